// A real OpenID Connect provider (the certified oidc-provider package) for the identity tests, on loopback.
//
// Environment: OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI, OIDC_ACCOUNTS (a JSON
// file, read at every sign-in: {"alice": {"email": ..., "name": ..., "groups": [...], "disabled": false}}),
// OIDC_CLOCK_SKEW_SECONDS (this provider's clock runs that far off: tokens it issues look expired).
// Sign-in: GET /interaction/<uid> shows a form; POST /interaction/<uid>/login with login=<account> signs
// that account in (all requested scopes granted), or answers access_denied for a disabled or unknown one.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const skew = Number(process.env.OIDC_CLOCK_SKEW_SECONDS || 0) * 1000;
if (skew) {
  const realNow = Date.now;
  Date.now = () => realNow() + skew;
}
const port = Number(process.env.OIDC_PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = () => JSON.parse(readFileSync(process.env.OIDC_ACCOUNTS, 'utf8'));

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.OIDC_CLIENT_ID,
    client_secret: process.env.OIDC_CLIENT_SECRET,
    redirect_uris: [process.env.OIDC_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    const account = accounts()[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, preferred_username: id, name: account.name || id,
          email: account.email, email_verified: true, groups: account.groups || [],
        };
      },
    };
  },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ['portal-identity-tests-only'] },
  // ID tokens live 10 minutes; everything else an hour, so a provider 20 minutes slow still completes a sign-in.
  ttl: { IdToken: 600, AccessToken: 3600, AuthorizationCode: 3600, Interaction: 3600, Session: 3600, Grant: 3600 },
});
provider.proxy = false;

async function body(req) {
  let raw = '';
  for await (const chunk of req) raw += chunk;
  return new URLSearchParams(raw);
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (!match[2]) {
    ctx.type = 'html';
    ctx.body = `<form method="post" action="/interaction/${details.uid}/login"><input name="login"><button>Sign in</button></form>`;
    return undefined;
  }
  const login = (await body(ctx.req)).get('login') || '';
  const account = accounts()[login];
  let result;
  if (!account || account.disabled) {
    result = { error: 'access_denied', error_description: 'the account is deactivated' };
  } else {
    const grant = new provider.Grant({ accountId: login, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    result = { login: { accountId: login }, consent: { grantId: await grant.save() } };
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(to);
  return undefined;
});

provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));

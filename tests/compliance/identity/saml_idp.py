"""A SAML 2.0 identity provider for the tests: pysaml2's own IdP (``saml2.server.Server``), with a fresh
signing key, answering the portal's AuthnRequests with signed assertions.

It speaks the browser bindings, so it needs no socket of its own: the test plays the browser, carrying the
portal's HTTP-Redirect AuthnRequest to the IdP and the IdP's HTTP-POST Response back to the portal.
"""

from __future__ import annotations

import base64
import datetime
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ENTITY_ID = "http://127.0.0.1/saml/idp"  # a name, never contacted (the browser bindings carry everything)
SSO_URL = "http://127.0.0.1/saml/idp/sso"


def _key_and_certificate(directory: Path) -> tuple[Path, Path, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal test IdP")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = directory / "idp.key", directory / "idp.crt"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    cert_file.write_text(pem)
    return key_file, cert_file, pem


class SamlIdentityProvider:
    def __init__(self, directory: Path, sp_metadata: str) -> None:
        from saml2 import BINDING_HTTP_REDIRECT
        from saml2.config import IdPConfig
        from saml2.saml import NAME_FORMAT_BASIC
        from saml2.server import Server

        key_file, cert_file, self.certificate = _key_and_certificate(directory)
        config = IdPConfig()
        config.load({
            "entityid": ENTITY_ID,
            "service": {"idp": {
                "endpoints": {"single_sign_on_service": [(SSO_URL, BINDING_HTTP_REDIRECT)]},
                "policy": {"default": {"lifetime": {"minutes": 15}, "attribute_restrictions": None,
                                       "name_form": NAME_FORMAT_BASIC}},
            }},
            "key_file": str(key_file),
            "cert_file": str(cert_file),
            "xmlsec_binary": shutil.which("xmlsec1"),
            "metadata": {"inline": [sp_metadata]},
        })
        self.server = Server(config=config)

    def portal_settings(self, *, organization: str = "sso") -> dict:
        return {"saml": {"APPS": [{
            "provider_id": "saml", "name": "Test SAML IdP", "client_id": organization,
            "settings": {
                "attribute_mapping": {"uid": "uid", "email": "email", "username": "uid"},
                "idp": {"entity_id": ENTITY_ID, "sso_url": SSO_URL, "x509cert": self.certificate},
                "advanced": {"want_assertion_signed": True, "want_message_signed": False,
                             "reject_idp_initiated_sso": True},
            },
        }]}}

    def answer(self, redirect_location: str, *, user: str, attributes: dict) -> dict:
        """The IdP's answer to the AuthnRequest in ``redirect_location``: the form fields (SAMLResponse,
        RelayState) the browser posts to the portal's assertion consumer service, and its URL."""
        from saml2 import BINDING_HTTP_REDIRECT, saml, xmldsig

        query = {key: values[0] for key, values in parse_qs(urlsplit(redirect_location).query).items()}
        request = self.server.parse_authn_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT).message
        response_args = self.server.response_args(request)
        response = self.server.create_authn_response(
            identity=attributes, userid=user,
            name_id=saml.NameID(format=saml.NAMEID_FORMAT_PERSISTENT, text=user),
            authn={"class_ref": saml.AUTHN_PASSWORD_PROTECTED, "authn_auth": ENTITY_ID},
            sign_assertion=True, sign_response=False,
            sign_alg=xmldsig.SIG_RSA_SHA256, digest_alg=xmldsig.DIGEST_SHA256, **response_args,
        )
        return {
            "url": response_args["destination"],
            "fields": {"SAMLResponse": base64.b64encode(str(response).encode()).decode(),
                       "RelayState": query.get("RelayState", "")},
        }

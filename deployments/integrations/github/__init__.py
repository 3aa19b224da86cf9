"""GitHub App integration: authentication, webhooks, protection rule intake, branch protection."""

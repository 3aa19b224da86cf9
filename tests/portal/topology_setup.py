"""Run inside the topology's production settings (``manage.py shell``): the people, environments,
webhook endpoints and API tokens the scenario needs, built through the portal's services. Prints
one JSON object: the service name, environment names and the clear tokens."""

import json
import os

from deployments.api import tokens
from deployments.delivery.secrets import encrypt_secret
from deployments.models import WebhookEndpoint
from tests import factories

receiver = os.environ["TOPOLOGY_RECEIVER_URL"]
secret = os.environ["TOPOLOGY_WEBHOOK_SECRET"]
count = int(os.environ["TOPOLOGY_ENVIRONMENTS"])

service = factories.ServiceFactory(name="shop")
ci = factories.UserFactory(username="ci-bot", is_service_account=True)
approvers = [factories.approver(username=f"approver{i}") for i in range(3)]
environments = []
for number in range(count):
    environment = factories.make_environment(service=service, name=f"env-{number}", required_approvals=2)
    WebhookEndpoint.objects.create(environment=environment, url=receiver, secret_ciphertext=encrypt_secret(secret))
    factories.grant(ci, "request", environment)
    for person in approvers:
        factories.grant(person, "approve", environment)
    environments.append(environment.name)
print(json.dumps({
    "service": service.name,
    "environments": environments,
    "ci": tokens.create_api_token(actor=ci, user=ci, name="ci")[1],
    "approvers": [tokens.create_api_token(actor=p, user=p, name="approver")[1] for p in approvers],
}))

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from . import selectors, services


@login_required
def request_detail(request, pk: int):
    deployment_request = selectors.request_for(user=request.user, pk=pk)
    verdict = services.verdict_for(deployment_request, deployment_request.approvals.all())
    return render(request, "deployments/request_detail.html", {"req": deployment_request, "verdict": verdict})

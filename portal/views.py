from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from deployments.gate import selectors


@login_required
def home(request):
    return render(request, "home.html", {"summary": selectors.home_summary(user=request.user)})

"""``manage.py check_gitlab``: call GitLab with the portal's token and report what is missing."""

from django.core.management.base import BaseCommand, CommandError

from deployments.integrations.gitlab.setup_check import check_gitlab


class Command(BaseCommand):
    help = "Check the GitLab set-up (token, projects, protected environments' approval rules, webhooks)."

    def handle(self, *args, **options):
        findings = check_gitlab()
        for finding in findings:
            style = self.style.SUCCESS if finding.ok else self.style.ERROR
            self.stdout.write(style(str(finding)))
        problems = sum(not f.ok for f in findings)
        if problems:
            raise CommandError(f"{problems} problem(s) found; see docs/gitlab.md.")
        self.stdout.write(self.style.SUCCESS("GitLab is set up correctly."))

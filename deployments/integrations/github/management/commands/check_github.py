"""``manage.py check_github``: call GitHub with the App's credentials and report what is wrong."""

from django.core.management.base import BaseCommand, CommandError

from deployments.integrations.github.setup_check import check_github


class Command(BaseCommand):
    help = "Check the GitHub App set-up (credentials, installations, permissions, protection rules)."

    def handle(self, *args, **options):
        findings = check_github()
        for finding in findings:
            style = self.style.SUCCESS if finding.ok else self.style.ERROR
            self.stdout.write(style(str(finding)))
        problems = sum(not f.ok for f in findings)
        if problems:
            raise CommandError(f"{problems} problem(s) found; see docs/github.md.")
        self.stdout.write(self.style.SUCCESS("GitHub is set up correctly."))

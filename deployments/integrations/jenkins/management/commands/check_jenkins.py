"""``manage.py check_jenkins``: call Jenkins with the portal's credentials and report what is wrong."""

from django.core.management.base import BaseCommand, CommandError

from deployments.integrations.jenkins.setup_check import check_jenkins


class Command(BaseCommand):
    help = "Check the Jenkins set-up (URL, the portal's user and API token, crumbs, jobs per environment)."

    def handle(self, *args, **options):
        findings = check_jenkins()
        for finding in findings:
            style = self.style.SUCCESS if finding.ok else self.style.ERROR
            self.stdout.write(style(str(finding)))
        problems = sum(not f.ok for f in findings)
        if problems:
            raise CommandError(f"{problems} problem(s) found; see docs/jenkins.md.")
        self.stdout.write(self.style.SUCCESS("Jenkins is set up correctly."))

from django.core.management.base import BaseCommand

from deployments.demo import load_demo_data


class Command(BaseCommand):
    help = "Load the demo users, services, environments and requests (idempotent)."

    def handle(self, *args, **options):
        logins = load_demo_data()
        self.stdout.write(self.style.SUCCESS("Demo data ready. Demo logins (change them outside a demo):"))
        for username, (password, role) in logins.items():
            self.stdout.write(f"  {username:<8} {password:<22} {role}")

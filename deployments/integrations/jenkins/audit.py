"""What of the Jenkins integration the audit trail records."""

from auditlog.registry import auditlog

from .models import JenkinsBuild, JenkinsJob

auditlog.register(JenkinsJob)
auditlog.register(JenkinsBuild)

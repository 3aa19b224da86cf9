"""The Jenkins integration: the portal answers Pipeline ``input`` steps (see docs/jenkins.md)."""

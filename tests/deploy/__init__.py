"""The deployment files under deploy/: systemd unit, container image, compose, Kubernetes."""

"""A synchronous, systemd-native idle-server culler for JupyterHub."""

__version__ = "0.1.0"

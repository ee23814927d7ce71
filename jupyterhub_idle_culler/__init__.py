"""The module name of jupyterhub-idle-culler: ``python -m jupyterhub_idle_culler`` runs
idle_culler_daemon with the same options (see ``__main__``). Nothing else lives here."""

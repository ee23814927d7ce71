"""The import rules of docs/architecture.md, checked on the source, so the layers stay honest."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "idle_culler_daemon"

# Keep in step with the table in docs/architecture.md.
ALLOWED = {
    "__init__": set(),
    "__main__": {"cli"},
    "errors": set(),
    "events": set(),
    "log": set(),
    "notify": {"log"},
    "converters": set(),
    "settings": {"converters"},
    "options": {"settings", "converters", "errors"},
    "pyconfig": {"options", "errors"},
    "sources": {"options", "pyconfig", "errors", "log"},
    "rules": {"settings", "options", "sources", "errors"},
    "config": {"settings", "options", "sources", "rules", "errors", "log"},
    "model": {"errors"},
    "policy": {"model", "config", "errors"},
    "scopes": {"config"},
    "clock": set(),
    "deadline": set(),
    "transport": {"config", "errors", "log", "deadline"},
    "hub": {"config", "errors", "transport"},
    "forewarn": {"policy", "model", "config"},
    "webhook": {"config", "forewarn", "log"},
    "stats": {"policy", "errors", "forewarn"},
    "jobs": {"policy", "model", "config", "log", "stats"},
    "context": {"forewarn", "stats"},
    "listing": {"context", "errors", "hub", "log", "model"},
    "planning": {"config", "forewarn", "jobs", "log", "model", "policy", "stats"},
    "kernels": {"context", "errors", "jobs", "log", "model", "policy"},
    "acting": {"config", "context", "errors", "forewarn", "hub", "jobs", "kernels", "log",
               "planning", "policy", "scopes", "stats"},
    "cull": {"acting", "clock", "config", "context", "errors", "kernels", "listing", "log",
             "planning", "stats"},
    "report": {"stats", "log", "forewarn"},
    "metrics": {"stats", "policy", "errors", "forewarn"},
    "service": {"scopes", "config", "cull", "stats", "errors", "hub", "log", "metrics",
                "clock", "webhook"},
    "daemon": {"stats", "notify", "errors", "log", "report"},
    "reference": {"scopes", "converters", "errors", "events", "metrics", "settings"},
    "installed": set(),
    "cli": {"config", "daemon", "errors", "installed", "log", "metrics", "notify", "options",
            "report", "service", "sources"},
}
PURE = {"requests", "urllib3", "logging", "time", "os", "socket", "threading"}
FORBIDDEN_EXTERNAL = {"policy": PURE, "model": PURE, "scopes": PURE, "options": PURE,
                      "converters": PURE, "settings": PURE, "clock": PURE, "forewarn": PURE}


def imports_of(path):
    internal, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module + "." + alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "idle_culler_daemon":
                if len(parts) > 1 and parts[1] != "__version__":
                    internal.add(parts[1])
            else:
                external.add(parts[0])
    return internal, external


def test_layering_every_module_imports_only_what_the_table_allows():
    modules = sorted(PACKAGE.glob("*.py"))
    assert {path.stem for path in modules} == set(ALLOWED), "add new modules to the table"
    for path in modules:
        name = path.stem
        internal, external = imports_of(path)
        assert internal <= ALLOWED[name], "%s imports %s" % (name, internal - ALLOWED[name])
        assert not external & FORBIDDEN_EXTERNAL.get(name, set()), name


def test_layering_nothing_imports_cli_and_only_cli_reads_the_environment():
    for path in PACKAGE.glob("*.py"):
        if path.stem in ("cli", "__main__"):
            continue
        internal, _ = imports_of(path)
        assert "cli" not in internal, path.stem
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                used = "%s.%s" % (node.value.id, node.attr)
                assert used not in ("os.environ", "sys.argv", "signal.signal", "os.getenv"), \
                    "%s uses %s" % (path.stem, used)


def test_layering_only_hub_transport_deadline_and_webhook_touch_requests():
    # that every request goes out through Transport.send, with a timeout, is checked by
    # behaviour: tests/integration/test_hub_client.py::test_client_every_request_*
    for path in PACKAGE.glob("*.py"):
        _, external = imports_of(path)
        if path.stem not in ("hub", "transport", "deadline", "webhook"):
            assert "requests" not in external and "urllib3" not in external, path.stem
    webhook = (PACKAGE / "webhook.py").read_text()
    assert webhook.count("self._session.") == 2  # the one POST, and close()
    assert "self._session.post(self._settings.url, json=body, timeout=self._timeout," in webhook
    assert "allow_redirects=False" in webhook


def test_layering_the_webhook_never_reaches_the_hubs_client_or_token():
    internal, _ = imports_of(PACKAGE / "webhook.py")
    assert "hub" not in internal and "transport" not in internal
    source = (PACKAGE / "webhook.py").read_text()
    assert "token" not in source.lower()


MODULE_NAME = PACKAGE.parent / "jupyterhub_idle_culler"


def test_layering_module_name_package_is_a_thin_entry_point():
    """``jupyterhub_idle_culler`` (the reference's module name) only delegates to the CLI:
    a docstring-only ``__init__`` and a ``__main__`` that exits with ``cli.main()``'s code."""
    assert sorted(p.name for p in MODULE_NAME.iterdir() if p.suffix == ".py") == [
        "__init__.py", "__main__.py"]
    init = ast.parse((MODULE_NAME / "__init__.py").read_text())
    assert len(init.body) == 1 and isinstance(init.body[0], ast.Expr)
    assert isinstance(init.body[0].value, ast.Constant) and isinstance(init.body[0].value.value,
                                                                      str)
    main = ast.parse((MODULE_NAME / "__main__.py").read_text())
    statements = main.body[1:] if isinstance(main.body[0], ast.Expr) else main.body
    shapes = [ast.dump(node) for node in statements]
    assert shapes == [ast.dump(node) for node in ast.parse(
        "import sys\n"
        "from idle_culler_daemon.cli import main\n"
        "if __name__ == '__main__':\n"
        "    sys.exit(main())\n").body]


def test_layering_import_jupyterhub_idle_culler_exposes_nothing():
    import importlib

    module = importlib.import_module("jupyterhub_idle_culler")
    assert [name for name in vars(module) if not name.startswith("__")] == []
    assert module.__doc__

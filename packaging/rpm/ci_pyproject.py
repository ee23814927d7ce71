#!/usr/bin/python3
"""CI-only helper behind the stand-in pyproject macros of ci-debian.macros.

Fedora's pyproject-rpm-macros are not on Debian. These subcommands do what the spec needs from
them, in the Fedora layout (/usr/lib/python3.X/site-packages), with Debian's python3 and its
`installer` package. Never used by a real Fedora or EPEL build.
"""

import argparse
import configparser
import glob
import importlib
import os
import sys
import sysconfig

import tomllib


def buildrequires(args):
    """Print build and runtime requirements as python3dist(), like %pyproject_buildrequires."""
    with open("pyproject.toml", "rb") as handle:
        requires = tomllib.load(handle).get("build-system", {}).get("requires", [])
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read("setup.cfg")
    requires += setup_cfg.get("options", "install_requires", fallback="").split()
    requires += ["wheel"]
    for requirement in requires:
        name, op, version = requirement, "", ""
        for candidate in (">=", "==", "<=", ">", "<"):
            if candidate in requirement:
                name, version = requirement.split(candidate, 1)
                op = candidate
                break
        name = name.strip().lower().replace("_", "-")
        print("python3dist(%s)%s" % (name, " %s %s" % (op, version.strip()) if op else ""))


def install(args):
    """Install the wheel into the buildroot, like %pyproject_install (RECORD dropped)."""
    from installer import install as install_wheel
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    paths = sysconfig.get_paths(scheme="posix_prefix", vars={"base": "/usr", "platbase": "/usr"})
    scheme = {key: paths[key] for key in ("purelib", "platlib", "scripts", "data")}
    scheme["headers"] = paths["include"]
    destination = SchemeDictionaryDestination(
        scheme, interpreter="/usr/bin/python3", script_kind="posix",
        bytecode_optimization_levels=(0, 1), destdir=args.buildroot)
    wheels = glob.glob(os.path.join(args.wheeldir, "*.whl"))
    if len(wheels) != 1:
        sys.exit("ci_pyproject: expected one wheel in %s, found %r" % (args.wheeldir, wheels))
    with WheelFile.open(wheels[0]) as source:
        install_wheel(source, destination, additional_metadata={"INSTALLER": b"rpm\n"})
    for record in glob.glob(args.buildroot + paths["purelib"] + "/*.dist-info/RECORD"):
        os.remove(record)


def save_files(args):
    """Write the %files list of the named top-level packages and the dist-info."""
    sitelib = args.buildroot + args.sitelib
    lines = []
    for module in args.modules:
        if not os.path.isdir(os.path.join(sitelib, module)):
            sys.exit("ci_pyproject: %s is not a package in %s" % (module, sitelib))
        lines.append("%s/%s/" % (args.sitelib, module))
    dist_infos = [os.path.basename(p) for p in glob.glob(os.path.join(sitelib, "*.dist-info"))]
    if len(dist_infos) != 1:
        sys.exit("ci_pyproject: expected one dist-info in %s, found %r" % (sitelib, dist_infos))
    lines.append("%s/%s/" % (args.sitelib, dist_infos[0]))
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def check_import(args):
    """Import every module listed in the %files list, like %pyproject_check_import."""
    sitelib = args.buildroot + args.sitelib
    sys.path.insert(0, sitelib)
    with open(args.files, encoding="utf-8") as handle:
        entries = [line.strip().rstrip("/") for line in handle if line.strip()]
    count = 0
    for entry in entries:
        relative = os.path.relpath(entry, args.sitelib)
        if relative.endswith(".dist-info"):
            continue
        for path in sorted(glob.glob(os.path.join(sitelib, relative, "**", "*.py"),
                                     recursive=True)):
            module = os.path.relpath(path, sitelib)[:-3].replace(os.sep, ".")
            module = module[: -len(".__init__")] if module.endswith(".__init__") else module
            if module.endswith("__main__"):
                continue
            importlib.import_module(module)
            count += 1
    print("ci_pyproject: imported %d modules" % count)
    if not count:
        sys.exit("ci_pyproject: nothing to import")


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("buildrequires").set_defaults(run=buildrequires)
    command = commands.add_parser("install")
    command.add_argument("--buildroot", required=True)
    command.add_argument("--wheeldir", required=True)
    command.set_defaults(run=install)
    command = commands.add_parser("save-files")
    command.add_argument("--buildroot", required=True)
    command.add_argument("--sitelib", required=True)
    command.add_argument("--output", required=True)
    command.add_argument("modules", nargs="+")
    command.set_defaults(run=save_files)
    command = commands.add_parser("check-import")
    command.add_argument("--buildroot", required=True)
    command.add_argument("--sitelib", required=True)
    command.add_argument("--files", required=True)
    command.set_defaults(run=check_import)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""CI-only helper behind the stand-in pyproject macros of .ci/rpm/debian.macros.

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
    for extra in filter(None, (args.extras or "").split(",")):
        requires += setup_cfg.get("options.extras_require", extra.strip()).split()
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
        sys.exit("pyproject_standin: expected one wheel in %s, found %r" % (args.wheeldir, wheels))
    with WheelFile.open(wheels[0]) as source:
        install_wheel(source, destination, additional_metadata={"INSTALLER": b"rpm\n"})
    for record in glob.glob(args.buildroot + paths["purelib"] + "/*.dist-info/RECORD"):
        os.remove(record)


def dist_info(args):
    """The name of the one dist-info directory in the buildroot's sitelib."""
    found = [os.path.basename(p)
             for p in glob.glob(os.path.join(args.buildroot + args.sitelib, "*.dist-info"))]
    if len(found) != 1:
        sys.exit("pyproject_standin: expected one dist-info in %s, found %r"
                 % (args.buildroot + args.sitelib, found))
    return found[0]


def license_files(metadata_path):
    """The License-File entries of a METADATA file (paths relative to the dist-info)."""
    with open(metadata_path, encoding="utf-8") as handle:
        headers = handle.read().split("\n\n", 1)[0]
    return [line.split(":", 1)[1].strip() for line in headers.splitlines()
            if line.lower().startswith("license-file:")]


def save_files(args):
    """Write the %files list of the named top-level packages and the dist-info.

    Like Fedora's macro, the dist-info's License-File entries are marked %license (so the spec
    needs no %license of its own); -l insists that there is one, -L turns the marking off.
    """
    sitelib = args.buildroot + args.sitelib
    lines = []
    for module in args.modules:
        if not os.path.isdir(os.path.join(sitelib, module)):
            sys.exit("pyproject_standin: %s is not a package in %s" % (module, sitelib))
        lines.append("%s/%s/" % (args.sitelib, module))
    name = dist_info(args)
    lines.append("%%dir %s/%s" % (args.sitelib, name))
    licenses = set()
    if not args.no_licenses:
        for entry in license_files(os.path.join(sitelib, name, "METADATA")):
            for candidate in (os.path.join("licenses", entry), entry):  # metadata 2.4, older
                if os.path.isfile(os.path.join(sitelib, name, candidate)):
                    licenses.add(candidate)
                    break
    if args.assert_license and not licenses:
        sys.exit("pyproject_standin: -l given, but the dist-info names no license file")
    for root, _, files in sorted(os.walk(os.path.join(sitelib, name))):
        for file in sorted(files):
            relative = os.path.relpath(os.path.join(root, file), os.path.join(sitelib, name))
            prefix = "%license " if relative in licenses else ""
            lines.append("%s%s/%s/%s" % (prefix, args.sitelib, name, relative))
    with open(args.output, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def check_import(args):
    """Import every module listed in the %files list, like %pyproject_check_import."""
    sitelib = args.buildroot + args.sitelib
    sys.path.insert(0, sitelib)
    with open(args.files, encoding="utf-8") as handle:
        entries = [line.split()[-1].rstrip("/") for line in handle if line.strip()]
    count = 0
    for entry in entries:
        relative = os.path.relpath(entry, args.sitelib)
        if ".dist-info" in relative:
            continue
        for path in sorted(glob.glob(os.path.join(sitelib, relative, "**", "*.py"),
                                     recursive=True)):
            module = os.path.relpath(path, sitelib)[:-3].replace(os.sep, ".")
            module = module[: -len(".__init__")] if module.endswith(".__init__") else module
            if module.endswith("__main__"):
                continue
            importlib.import_module(module)
            count += 1
    print("pyproject_standin: imported %d modules" % count)
    if not count:
        sys.exit("pyproject_standin: nothing to import")


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("buildrequires")
    command.add_argument("--extras")
    command.set_defaults(run=buildrequires)
    command = commands.add_parser("install")
    command.add_argument("--buildroot", required=True)
    command.add_argument("--wheeldir", required=True)
    command.set_defaults(run=install)
    command = commands.add_parser("save-files")
    command.add_argument("--buildroot", required=True)
    command.add_argument("--sitelib", required=True)
    command.add_argument("--output", required=True)
    command.add_argument("-l", dest="assert_license", action="store_true")
    command.add_argument("-L", dest="no_licenses", action="store_true")
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

#!/usr/bin/python
"""Module `dpkg_facts`: the installed packages as `ansible_facts.installed_packages`, read from dpkg.

Found by ansible-playbook next to the playbooks (playbooks/library). Used by playbooks/preflight.yml, so
that every role's apt task runs only when one of its packages is missing (docs/LAB.md, "Operator speed").

Why not ansible.builtin.package_facts: on Debian it opens python-apt's cache and walks every package the
sources list (~63,000 on bookworm) to find the ~220 installed ones, about 0.5 s of the node's CPU per host.
`dpkg-query` answers the same question from dpkg's own database in a few milliseconds.

Why not package_facts' shape (name -> list of {name, version, arch, source}): ansible-playbook deep-copies
a host's facts every time it computes the host's variables, once per task and host in the controller and
again for every `hostvars[...]` a template reads. With ~220 packages in that shape, that was 1.4 ms per copy
instead of 0.3 ms, several seconds of the controller's CPU in a run of site.yml (docs/LAB.md). A flat
name -> version mapping answers the roles' question (`names | difference(...)`, `name in ...`) as well.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: dpkg_facts
short_description: Installed Debian packages as facts (name to version), from dpkg-query
description:
  - Sets C(ansible_facts.installed_packages) to a dict of package name to its installed version. A
    package installed for several architectures has the same version in each (dpkg's Multi-Arch rule) and
    is listed once.
  - A package counts as installed when dpkg has it fully installed (also with triggers pending). One that
    is unpacked, half-installed, half-configured or only has its configuration files left is not listed,
    so an apt task for it still runs and finishes the job.
  - Read-only; supports check mode.
options: {}
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: Installed packages, from dpkg
  dpkg_facts:

- name: Install nginx unless it is installed
  ansible.builtin.apt:
    name: [nginx]
  when: ['nginx'] | difference(ansible_facts.installed_packages | default({})) | length > 0
"""

RETURN = r"""
ansible_facts:
  description: C(installed_packages), as described above.
  returned: always
  type: dict
"""

FIELDS = ("${db:Status-Abbrev}", "${Package}", "${Version}")
QUERY = ["dpkg-query", "--show", "--showformat=" + "\t".join(FIELDS) + "\n"]
# dpkg's current state, the second letter of db:Status-Abbrev: installed, triggers awaited, triggers pending.
INSTALLED_STATES = frozenset("iWt")


def parse(output: str) -> dict[str, str]:
    """`dpkg-query --show` lines (QUERY's format) -> installed package name -> its version."""
    packages: dict[str, str] = {}
    for line in output.splitlines():
        status, _, rest = line.partition("\t")
        if len(status) < 2 or status[1] not in INSTALLED_STATES:
            continue
        name, version = [*rest.split("\t"), ""][:2]
        if name:
            packages.setdefault(name, version)
    return packages


def main() -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    rc, out, err = module.run_command(QUERY, environ_update={"LC_ALL": "C"})
    if rc != 0:
        module.fail_json(msg=f"dpkg-query failed (rc={rc}): {err.strip()}", rc=rc)
    module.exit_json(changed=False, ansible_facts={"installed_packages": parse(out)})


if __name__ == "__main__":
    main()

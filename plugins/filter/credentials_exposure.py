# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether Ansible would read a credentials directory as inventory (documentation: credentials_exposure.yml)."""

from __future__ import annotations

import os
import re

# Names Ansible never reads in an inventory directory, whatever its configuration.
_ALWAYS_IGNORED = (r"^\.", r"^host_vars$", r"^group_vars$", r"^vars_plugins$")


def _ignored(name, patterns, extensions):
    if any(re.search(pattern, name) for pattern in (*_ALWAYS_IGNORED, *patterns)):
        return True
    return any(name.endswith(extension) for extension in extensions if extension)


def credentials_exposure(credentials_dir, sources, ignore_patterns=(), ignore_extensions=()):
    """A message when ``credentials_dir`` lies inside an inventory directory of ``sources`` that Ansible would read
    (no name on the way matches ``ignore_patterns`` or ends with one of ``ignore_extensions``), else "".

    Ansible parses every file of an inventory directory, recursively; its INI parser turns a one-line secret file
    into a host named after the secret.
    """
    if not isinstance(credentials_dir, str) or not credentials_dir:
        raise TypeError("credentials_exposure expects the credentials directory as a non-empty string")
    if isinstance(sources, str) or not isinstance(sources, (list, tuple)):
        raise TypeError("credentials_exposure expects the inventory sources as a list")
    target = os.path.realpath(credentials_dir)
    for source in sources:
        if not isinstance(source, str) or not os.path.isdir(source):
            continue
        base = os.path.realpath(source)
        if target != base and not target.startswith(base.rstrip("/") + "/"):
            continue
        names = [] if target == base else os.path.relpath(target, base).split(os.sep)
        if names and any(_ignored(name, ignore_patterns, ignore_extensions) for name in names):
            continue
        return (
            f"{credentials_dir} lies inside the inventory directory {source}, which Ansible reads file by file as"
            " inventory: each secret file there would become a host named after the secret. Add the directory's"
            " name to [inventory] ignore_patterns in ansible.cfg (for example ^credentials$), or keep the"
            " credentials outside the inventory directory"
        )
    return ""


class FilterModule:
    """celeryops.stack filters that keep generated secrets out of the inventory."""

    def filters(self):
        return {"credentials_exposure": credentials_exposure}

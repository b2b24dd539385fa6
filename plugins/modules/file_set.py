#!/usr/bin/python
# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: file_set
short_description: Several directories and small text files, with owner, group and mode, in one task
version_added: 0.1.0
description:
  - Ensures a list of directories, then a list of small text files with their content, owner, group and mode, in
    B(one) module run. It replaces loops of M(ansible.builtin.file) and series of M(ansible.builtin.template) tasks
    (each of which costs two module runs and a file transfer); render templates on the controller with
    C(lookup('ansible.builtin.template', ...)) and pass the text as I(files[].content).
  - Everything is checked first, without changing anything (paths, modes, users and groups, what exists at each
    path); any problem fails the task before the first change. Then the directories and the files are handled in
    list order, and only what differs is changed.
  - A file whose content differs is replaced atomically; a temporary file in the same directory, created with mode
    C(0600), gets the content, the owner, the group and the mode, is synced to disk, then renamed over the path. The
    new content is never readable by more users than the final mode allows, at any moment. When only the owner,
    group or mode differ, they are set on the existing file.
  - The module does not hide I(files[].content); set C(no_log=true) on the task when a file holds a secret (the
    content appears in the diff and in the module's arguments otherwise).
author:
  - celeryops.stack maintainers (@celeryops)
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
    support: full
    details:
      - Reads the current state and reports what would change; creates, writes and changes nothing.
      - An owner or group that does not exist yet, or a missing directory of a file, is no error in check mode
        (earlier tasks of the same run, such as M(ansible.builtin.user), would have created them); such a path is
        reported as changing.
  diff_mode:
    description:
      - Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
    support: full
    details:
      - For each path that changes, the owner, group and mode before and after; the state of directories; the
        content of files (empty before when the file is missing).
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  directories:
    description:
      - Directories to ensure, in this order (list a parent before its child).
      - A missing directory is created, then its owner, group and mode are set. Its missing parents are created
        too, with mode C(0755) and the ownership of the user the module runs as (root with C(become=true)).
      - A path that exists and is not a directory, a symlink to a directory included, fails the task.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory.
        type: str
        required: true
      owner:
        description: User name (or all-digit uid) that owns the directory.
        type: str
        required: true
      group:
        description: Group name (or all-digit gid) of the directory.
        type: str
        required: true
      mode:
        description:
          - Octal mode, as a quoted string of 3 or 4 octal digits with an optional leading C(0), like C("0750"),
            C("750") or C("2750").
          - A number fails the task; YAML reads an unquoted C(0750) as the number 488.
        type: raw
        required: true
  files:
    description:
      - Small text files to ensure, in this order, after the directories.
      - The directory of each file must exist, or be created by I(directories) in the same task.
      - A path that exists and is not a regular file (a directory, a symlink, a device) fails the task.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file.
        type: str
        required: true
      content:
        description:
          - The text of the file, written as UTF-8 exactly as given (no newline is added or removed).
          - Not hidden from logs by the module; use C(no_log=true) on the task for secrets.
        type: str
        required: true
      owner:
        description: User name (or all-digit uid) that owns the file.
        type: str
        required: true
      group:
        description: Group name (or all-digit gid) of the file.
        type: str
        required: true
      mode:
        description:
          - Octal mode, as a quoted string of 3 or 4 octal digits with an optional leading C(0), like C("0640").
          - A number fails the task; YAML reads an unquoted C(0640) as the number 416.
        type: raw
        required: true
notes:
  - Quote modes. YAML reads an unquoted C(0640) as the number 416; the module refuses numbers rather than guess.
  - Each path may appear once, in one of the two lists; paths are normalised (C(/etc/celery/) is C(/etc/celery)).
  - A replaced file is a new inode; hard links to the old one keep the old content, and its ACLs, extended
    attributes and SELinux context are not carried over.
  - Meant for small files; the current content of each listed file is read to compare it.
seealso:
  - module: ansible.builtin.file
  - module: ansible.builtin.copy
  - module: ansible.builtin.template
  - plugin: ansible.builtin.template
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Write the worker environment file and the wrapper
  celeryops.stack.file_set:
    directories:
      - {path: /opt/celery, owner: root, group: root, mode: "0755"}
      - {path: /etc/celery, owner: root, group: celery, mode: "0750"}
    files:
      - path: /etc/celery/worker.env
        content: "{{ lookup('ansible.builtin.template', 'worker.env.j2') }}"
        owner: root
        group: celery
        mode: "0640"
      - path: /opt/celery/celery-run
        content: "{{ lookup('ansible.builtin.template', 'celery-run.j2') }}"
        owner: root
        group: root
        mode: "0755"
  become: true
  no_log: true
  notify: Restart the Celery workers

- name: Create the log and state directories
  celeryops.stack.file_set:
    directories:
      - {path: /var/log/celery, owner: celery, group: adm, mode: "2750"}
      - {path: /var/lib/celery, owner: celery, group: celery, mode: "0700"}
  become: true
  register: __file_set_dirs

- name: Show what changed
  ansible.builtin.debug:
    msg: "{{ __file_set_dirs.changed_paths }}"
"""

RETURN = r"""
changed:
  description: Whether any directory or file was (or, in check mode, would be) created or modified.
  returned: always
  type: bool
  sample: true
changed_paths:
  description:
    - The paths created or modified (or that would be in check mode), in the order they were handled, missing
      parents of a listed directory included. On failure, the paths changed before it.
  returned: always
  type: list
  elements: str
  sample: [/opt/celery, /etc/celery/worker.env]
created_paths:
  description: The directories and files among RV(changed_paths) that did not exist.
  returned: always
  type: list
  elements: str
  sample: [/opt/celery]
diff:
  description:
    - One entry per changed path; the state (directories), owner, group and mode, then the content (files), before
      and after. The only key that holds file contents.
  returned: when diff mode is enabled
  type: list
  elements: dict
  sample:
    - before_header: /etc/celery/worker.env
      after_header: /etc/celery/worker.env
      before: "owner: root\ngroup: root\nmode: 0644\n\nCELERY_LOGLEVEL=INFO\n"
      after: "owner: root\ngroup: celery\nmode: 0640\n\nCELERY_LOGLEVEL=WARNING\n"
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.celeryops.stack.plugins.module_utils.file_set import FileSetError, run  # noqa: E402


def _entry(**extra):
    options = dict(
        path=dict(type="str", required=True),
        owner=dict(type="str", required=True),
        group=dict(type="str", required=True),
        mode=dict(type="raw", required=True),
    )
    options.update(extra)
    return dict(type="list", elements="dict", default=[], options=options)


def argument_spec():
    return dict(
        directories=_entry(),
        files=_entry(content=dict(type="str", required=True)),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = run(module.params, module.check_mode)
    except FileSetError as exc:
        module.fail_json(
            msg=exc.message,
            changed=bool(exc.changed_paths),
            changed_paths=exc.changed_paths,
            created_paths=exc.created_paths,
        )
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()

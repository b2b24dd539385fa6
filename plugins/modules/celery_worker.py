#!/usr/bin/python
# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: celery_worker
short_description: Warm start, stop, restart and (re)configuration of supervisor-managed Celery workers
version_added: 0.1.0
description:
  - Brings one or more Celery worker programs run by supervisord to C(started), C(stopped) or C(restarted), one
    program after the other, without losing the tasks they are running; applies the file of one program
    (C(present), C(absent)) the same way.
  - The module exists for the quiesce described below. C(supervisorctl stop), C(restart) and C(update) (and
    M(community.general.supervisorctl)) send the C(stopsignal) at once, without it, so a prefork worker can run a
    task twice. Every stop of a worker should go through this module, including the stop that a changed program
    file or a restart of supervisord needs.
  - Talks to supervisord through XML-RPC on its UNIX socket (no C(supervisorctl), no password on a command line)
    and to the workers through C(celery inspect), run with the wrapper that is the program's C(argv[0]).
  - A B(warm restart) sends C(SIGTERM) to the worker's main process only (supervisor C(signalProcess)), waits
    while running tasks finish, lets supervisor's C(autorestart) spawn a new process (or calls C(startProcess) if
    the program ends up C(EXITED), C(STOPPED) or C(FATAL)), then waits until supervisor reports C(RUNNING) past
    C(startsecs) with a new pid B(and) the node answers C(celery inspect ping). Pings start as soon as the new
    process exists (with a reply wait of at most 0.3 seconds while supervisor still counts C(startsecs)), so the
    wait ends when both conditions hold, not one after the other.
  - Before the C(SIGTERM) (or C(stopProcess)) of a B(prefork) worker, the module quiesces it (see
    I(quiesce_timeout)) with C(celery control cancel_consumer) for each of its queues, then C(celery inspect
    reserved) until every task it had received has started. A prefork worker acknowledges a task from its event
    loop when a pool process accepts it; a task accepted after the warm shutdown ended that loop still runs, but
    its acknowledgement is never sent and the broker delivers it again, so it would run twice.
  - Between the two, the worker hands back (rejects with requeue) the tasks it received but could not start because
    every pool process was busy, with the remote control command C(celeryops_hand_back), so the broker delivers them
    to another consumer at once and the quiesce does not wait for a process to free up. The command comes from the
    module C(celeryops_worker_control), which the C(celeryops.stack.workers) role installs and has every worker
    import (C(--include)); the module's C(celery control) call uses it as its app
    (C(--app=celeryops_worker_control:app), with the worker's C(--app) in the environment variable
    C(CELERYOPS_APP)). A worker without it hands back nothing (RV(programs[].handed_back) is C(null)) and the
    quiesce waits as before, up to I(quiesce_timeout).
  - An B(overlapping restart) (I(overlap), the default) is used for a standalone program C(NAME) when supervisord
    also runs the program C(NAME-handover), its B(handover), the same worker command and queues under another node
    name, declared with C(autostart=false) (the C(celeryops.stack.workers) role writes it, node
    C(<queue>-handover.<host>)). The module starts the handover (it loads the code on disk) and waits until it
    answers a ping; only then does it quiesce and warm-restart the worker as above, so the queue keeps a consumer
    while the old process finishes its running tasks; once the worker's new process answers, the handover is
    quiesced and warm-stopped the same way, and the task ends when it is gone. At most two workers of a queue run
    at a time. If the handover does not come up (the new code fails to start), the worker is not touched, the
    handover is stopped and the task fails.
  - A B(warm stop) uses supervisor C(stopProcess), which sends the configured C(stopsignal) (C(TERM)) to the main
    process and marks the program stopped so that C(autorestart) leaves it down. supervisord itself sends
    C(SIGKILL) to the process group after the program's C(stopwaitsecs), whatever I(on_timeout) says, so keep
    C(stopwaitsecs) at least as long as I(timeout) and the tasks' hard time limit.
  - Every program is validated (name, Celery worker command, node name, C(stopsignal)) before anything is changed.
  - C(present) and C(absent) do for one program what C(supervisorctl update NAME) does, with the quiesce and the warm
    stop. The module reads the configuration supervisord has loaded (the settings the running process was started
    with, whose node name, queues and wrapper the quiesce needs), then calls C(reloadConfig), which re-reads every
    program file like C(supervisorctl reread) without touching a process. A program supervisord does not run yet
    is added (C(addProcessGroup)) and started. A program whose settings changed is quiesced and stopped with its
    old settings (as C(stopped) does), removed (C(removeProcessGroup)) and added again, then awaited with the new
    ones until it runs past C(startsecs) and answers a ping. Any other program is brought to C(started).
  - Apply one program at a time. Write or delete its file, run this module for it, and only then write or delete
    the next file. C(reloadConfig) re-reads every file. Once supervisord has read another program's new file, the
    settings that program's running process was started with are lost. Its C(present) then quiesces it with the
    new node name and queues, and no warning says so. Its C(absent) stops it without the quiesce, with a warning.
  - The module expects the deployment conventions of the C(celeryops.stack) workers role; C(stopsignal=TERM),
    C(killasgroup=true), no C(stopasgroup), C(autorestart=true), one program per queue whose command is
    C(<wrapper> [--app=...] worker [--hostname=...] [--queues=...] ...).
author:
  - celeryops.stack maintainers (@celeryops)
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
    support: full
    details:
      - Read-only probes run (supervisor state, configuration and C(celery inspect active)); nothing is signalled,
        started or stopped. The result says what would change.
      - With I(state=present), supervisord does not re-read the program files in check mode (C(reloadConfig)
        would change its loaded configuration), so a changed file is predicted by the task that writes it, not
        by this module.
  diff_mode:
    description:
      - Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
    support: full
    details:
      - Shows the supervisor state and main pid of every selected program before and after.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
options:
  name:
    description:
      - The supervisor program to manage, as supervisor names it in RPC; a standalone program's name
        (C(celery-customers)), C(group:name), or C(group:*) for every program of a group.
      - C(*) selects every program that is a Celery worker and that supervisord runs; the others (Flower, ...) are
        skipped, and so are the handovers (see I(overlap)) of the selected workers unless I(state=stopped); no worker
        at all is no error (C(changed=false), RV(programs) empty). For example, stop them
        all with C(state=stopped) before supervisord restarts, then wait for them with C(state=started).
      - With I(state=present) or I(state=absent), the name of one standalone program (its C([program:NAME])
        section, C(numprocs=1), in no C([group:...])), not C(group:name), C(group:*) or C(*).
      - Exactly one of I(name) and I(queue) is required.
    type: str
    aliases: [program]
  queue:
    description:
      - Manage every supervisor program whose worker command serves this Celery queue (C(-Q)/C(--queues); a worker
        without it serves C(celery)). Programs that are not Celery workers are ignored, and so are the handovers of
        the selected workers unless I(state=stopped).
      - Exactly one of I(name) and I(queue) is required. Not with I(state=present) or I(state=absent).
    type: str
  state:
    description:
      - C(started) starts a program that is not running; a C(RUNNING) program is left alone (C(changed=false)).
      - C(stopped) drains and stops a running program and keeps it stopped; a stopped one is left alone.
      - C(restarted) always does a warm restart (drain, then a new process that answers a ping).
      - C(present) makes supervisord run the program as its file now declares it (see the description). A new
        program is added and started (action C(add)); a changed one is quiesced and stopped with its old settings,
        removed, added again and awaited (action C(reload)); otherwise it acts like C(started). A program stopped
        on purpose is started again. A program declared with C(autostart=false) (a handover) is added, or
        re-added when changed (drained and stopped first if it runs), but not started; unchanged, it is left as it
        is. In check mode it does not call C(reloadConfig), which would change what
        supervisord has loaded. A program supervisord does not run is predicted as C(add), any other as C(started)
        would do. A changed file is reported by the task that writes it, not by this module in check mode.
      - C(absent) quiesces and stops the program, then removes it from supervisord (action C(remove));
        C(changed=false) when supervisord does not run it. Delete its file first. The task fails, before any stop,
        when a file still declares the program after C(reloadConfig), since supervisord would add it again at its
        next update or restart. In check mode, the file is not checked (its deletion was only predicted).
    type: str
    required: true
    choices: [started, stopped, restarted, present, absent]
  timeout:
    description:
      - Seconds to wait for a worker's running tasks to finish after the warm shutdown began (the drain).
      - Must be greater than 0.
    type: int
    default: 600
  on_timeout:
    description:
      - What to do when the drain takes longer than I(timeout).
      - C(fail) leaves the worker draining (it takes no new tasks and exits when its tasks are done; supervisor
        restarts it for C(restarted), or kills it at C(stopwaitsecs) for C(stopped)) and fails the task.
      - C(cold) sends C(SIGQUIT) to the main process (Celery cold shutdown; running tasks are abandoned and go back
        to the broker only if they are C(acks_late)).
      - C(kill) sends C(SIGKILL) to the main process.
      - After C(cold) or C(kill), the module waits up to I(escalation_timeout) seconds for the process to exit.
    type: str
    choices: [fail, cold, kill]
    default: fail
  start_timeout:
    description:
      - Seconds to wait, after the drain, for supervisor to report C(RUNNING) with a new pid past C(startsecs) and
        for the node to answer a ping.
    type: int
    default: 120
  escalation_timeout:
    description:
      - Seconds to wait for the process to exit after the C(SIGQUIT) or C(SIGKILL) of I(on_timeout).
    type: int
    default: 30
  poll_interval:
    description:
      - Seconds between two looks at supervisor while waiting (a local XML-RPC call on its socket).
    type: float
    default: 0.25
  ping_timeout:
    description:
      - The C(--timeout) in seconds given to C(celery inspect ping), C(inspect active), C(inspect reserved) and
        C(control cancel_consumer); pings sent while the new process is still C(STARTING) wait at most 0.3
        seconds.
    type: float
    default: 5.0
  ping_command:
    description:
      - The command (a list, run without a shell) that checks that a worker answers, instead of
        C(<wrapper> [--app=...] inspect ping --destination <node> --timeout <ping_timeout> --json).
      - Items may contain the placeholders C({wrapper}), C({app}), C({node}), C({timeout}) and C({program}).
      - The worker counts as answering when the command exits 0 and, if it prints C(celery inspect --json) output,
        that output has a reply from the node.
    type: list
    elements: str
  quiesce_timeout:
    description:
      - At most this many seconds of quiesce before the warm shutdown of a prefork worker (C(--pool) absent or
        C(prefork)); C(0) shuts it down at once. Other pools acknowledge outside an event loop and skip it.
      - If the node does not confirm C(cancel_consumer), the module warns and shuts it down at once. Tasks still
        received and unstarted when the time is up go back to the broker at the shutdown, as without it.
    type: float
    default: 10
  overlap:
    description:
      - With I(state=restarted), restart a worker whose handover program C(NAME-handover) supervisord runs with an
        overlap (see the description); C(false) restarts it alone, the queue then has no consumer from the quiesce
        until the new process is ready.
      - A worker without a handover (or one in a C([group:...])) is restarted alone either way. A handover that
        serves other queues, has the worker's node name or C(autostart=true) fails the task before any change.
    type: bool
    default: true
  inspect_active:
    description:
      - Run C(celery inspect active) when the drain begins to report how many tasks were running
        (RV(programs[].active_tasks)). Best effort; C(null) when the node does not answer.
    type: bool
    default: true
  socket:
    description:
      - Path of supervisord's C([unix_http_server]) socket. It is usually mode C(0700) and owned by root, so the
        task needs C(become=true).
    type: path
    default: /var/run/supervisor.sock
notes:
  - Supervisor 4.2 does not report C(autorestart) through XML-RPC; the module does not rely on it, it calls
    C(startProcess) when the program ends up C(EXITED), C(STOPPED) or C(FATAL) after the drain. For a program in
    C(BACKOFF) it waits, since supervisor is already retrying, and starts it once if it becomes C(FATAL).
  - C(SIGTERM), C(SIGQUIT) and C(SIGKILL) sent by this module reach the worker's main process only. With the
    C(prefork) pool, Celery's main process takes its pool children down on C(TERM) and C(QUIT); after a C(SIGKILL)
    of the main process, orphaned pool children are only killed by supervisor's C(killasgroup) on a later stop.
  - Celery 5 wants C(--app) before the C(worker) subcommand; the probes always put the app, broker, loader, config
    and workdir options found anywhere in the command before C(inspect).
  - The node name is expanded like Celery does (C(%h), C(%n), C(%d); C(celery@) is prepended to a name without C(@))
    with the managed host's name. When that does not match the workers, set I(ping_command).
  - The probes are bounded with coreutils C(timeout) when it is installed, so a dead broker cannot hang the task.
  - C(reloadConfig) also reads the files of other programs. C(present) and C(absent) apply the named program only;
    other changed, new or deleted files wait for their own task (as after C(supervisorctl reread)).
requirements:
  - supervisord 4.x with a C([unix_http_server]) socket and its C([rpcinterface:supervisor]) section.
  - Celery 5.x on the managed host (its C(inspect ... --json) output).
seealso:
  - name: Celery workers guide, stopping the worker
    description: Warm and cold shutdown of a Celery worker.
    link: https://docs.celeryq.dev/en/stable/userguide/workers.html#stopping-the-worker
  - name: Supervisor XML-RPC API
    description: The RPCs this module uses.
    link: https://supervisord.org/api.html
  - module: community.general.supervisorctl
"""

EXAMPLES = r"""
- name: Warm-restart the customers worker (wait up to 10 minutes for running tasks)
  celeryops.stack.celery_worker:
    name: celery-customers
    state: restarted
  become: true

- name: Restart every worker that serves the invoices queue, cold shutdown after 5 minutes of draining
  celeryops.stack.celery_worker:
    queue: invoices
    state: restarted
    timeout: 300
    on_timeout: cold
  become: true

- name: Restart all programs of the supervisor group celery-batch
  celeryops.stack.celery_worker:
    name: "celery-batch:*"
    state: restarted
    start_timeout: 180
  become: true

- name: Restart the reports worker alone, even though it has a handover program
  celeryops.stack.celery_worker:
    name: celery-reports
    state: restarted
    overlap: false
  become: true

- name: Stop the reports worker and keep it stopped
  celeryops.stack.celery_worker:
    name: celery-reports
    state: stopped
    timeout: 900
    on_timeout: kill
  become: true

- name: Make sure the customers worker runs
  celeryops.stack.celery_worker:
    name: celery-customers
    state: started
  become: true

- name: Write the program file of the customers worker
  ansible.builtin.template:
    src: celery-customers.conf.j2
    dest: /etc/supervisor/conf.d/celery-customers.conf
    mode: "0644"
  become: true

# New: added and started. Changed: quiesce and warm stop with the old settings, then started with the new ones.
# Either way the task ends when the worker runs past startsecs and answers a ping.
- name: Apply the program file of the customers worker
  celeryops.stack.celery_worker:
    name: celery-customers
    state: present
    timeout: 900
  become: true

- name: Delete the program file of the retired reports worker
  ansible.builtin.file:
    path: /etc/supervisor/conf.d/celery-reports.conf
    state: absent
  become: true

- name: Stop the retired reports worker gracefully and remove its program
  celeryops.stack.celery_worker:
    name: celery-reports
    state: absent
  become: true

- name: Stop every Celery worker gracefully before supervisord restarts
  celeryops.stack.celery_worker:
    name: "*"
    state: stopped
  become: true

- name: Restart supervisord
  ansible.builtin.systemd_service:
    name: supervisor
    state: restarted
  become: true

- name: Wait until every Celery worker runs and answers a ping again
  celeryops.stack.celery_worker:
    name: "*"
    state: started
  become: true

- name: Restart a worker and check it with a site-specific health check instead of celery inspect ping
  celeryops.stack.celery_worker:
    name: celery-customers
    state: restarted
    ping_command:
      - /opt/celery/bin/celery-health
      - "--node={node}"
      - "--timeout={timeout}"
  become: true

- name: Warm-restart the customers worker and keep the result
  celeryops.stack.celery_worker:
    name: celery-customers
    state: restarted
  become: true
  register: __celery_worker_restart

- name: Report the drain
  ansible.builtin.debug:
    msg: >-
      {{ item.name }}: {{ item.active_tasks }} task(s) drained in {{ item.drain_seconds }} s,
      pid {{ item.pid_before }} -> {{ item.pid_after }}
  loop: "{{ __celery_worker_restart.programs }}"
"""

RETURN = r"""
changed:
  description: Whether any program was (or, in check mode, would be) signalled, started, stopped, added or removed.
  returned: always
  type: bool
  sample: true
total_seconds:
  description: Seconds the whole task took.
  returned: always
  type: float
  sample: 42.3
programs:
  description:
    - One entry per selected program, in supervisor's order. On failure, the entries of the programs handled so
      far, the failing one last.
    - With I(state=present) or I(state=absent), one entry (none when the task fails before the program is
      acted on). With I(name=*) and no worker, empty.
  returned: always
  type: list
  elements: dict
  sample:
    - name: celery-customers
      node: celery@customers.app1
      queues: [customers]
      action: restart
      pid_before: 4242
      pid_after: 4317
      state_before: RUNNING
      state_after: RUNNING
      active_tasks: 3
      quiesce_seconds: 2.1
      handed_back: []
      drain_seconds: 17.2
      shutdown: warm
      handover:
        name: celery-customers-handover
        node: celery@customers-handover.app1
        pid: 4290
        boot_seconds: 3.1
        active_tasks: 2
        handed_back: []
        drain_seconds: 0.8
        shutdown: warm
      total_seconds: 24.9
      changed: true
      check_mode: false
  contains:
    name:
      description: The program's supervisor name (C(name) or C(group:name)).
      returned: always
      type: str
      sample: celery-customers
    node:
      description:
        - The Celery node name of the worker, expanded from its C(--hostname). With I(state=present), from the new
          file.
        - C(null) when the worker command is unknown (I(state=absent) of a program no longer in the configuration
          supervisord had loaded; check mode of a program to add).
      returned: always
      type: str
      sample: celery@customers.app1
    queues:
      description:
        - The queues the worker serves (C(-Q)/C(--queues); C(celery) when absent). Empty when I(node) is C(null).
      returned: always
      type: list
      elements: str
      sample: [customers]
    action:
      description:
        - What the module did (or would do in check mode). C(none), C(start), C(restart), C(stop), C(wait_up)
          (supervisor was already starting it), C(wait_down) or C(wait_down_then_start) (someone else was stopping
          it).
        - With I(state=present) also C(add) (a new program, added and started) and C(reload) (changed settings, so
          drained and stopped, removed, added and started again); with I(state=absent), C(remove) (drained and
          stopped if it ran, then removed) or C(none) (supervisord does not run it).
      returned: always
      type: str
      sample: restart
    pid_before:
      description: The main pid before, or C(null) when it was not running (or supervisord did not have it).
      returned: always
      type: int
      sample: 4242
    pid_after:
      description:
        - The main pid after, or C(null) when stopped or removed. In check mode, C(null) where a new process would
          be spawned.
      returned: always
      type: int
      sample: 4317
    state_before:
      description:
        - The supervisor state before (C(RUNNING), C(STOPPED), C(EXITED), C(FATAL), C(BACKOFF), ...); C(null) when
          supervisord did not have the program (action C(add), or C(none) of I(state=absent)).
      returned: always
      type: str
      sample: RUNNING
    state_after:
      description:
        - The supervisor state after (predicted in check mode); C(null) when supervisord no longer has the program
          (I(state=absent)).
      returned: always
      type: str
      sample: RUNNING
    active_tasks:
      description:
        - How many tasks the worker was executing when the drain began, from C(celery inspect active); C(null) when
          there was no drain, I(inspect_active=false), or the node did not answer.
      returned: always
      type: int
      sample: 3
    quiesce_seconds:
      description:
        - Seconds from C(cancel_consumer) until the warm shutdown signal (see I(quiesce_timeout)); C(null) when
          there was no quiesce (no drain, not a prefork worker, or I(quiesce_timeout=0)).
      returned: always
      type: float
      sample: 2.1
    handed_back:
      description:
        - Ids of the tasks the worker handed back to the broker during its quiesce (received but not started,
          because every pool process was busy); C(null) when there was no quiesce or the worker cannot hand back
          (see the notes).
      returned: always
      type: list
      elements: str
      sample: []
    drain_seconds:
      description: Seconds from the warm shutdown signal until the old process was gone; C(null) without a drain.
      returned: always
      type: float
      sample: 17.2
    shutdown:
      description:
        - How the old process was shut down; C(warm) (C(TERM)), C(cold) (C(QUIT) after I(timeout)), C(kill)
          (C(KILL) after I(timeout)), or C(null) when it was not shut down.
      returned: always
      type: str
      sample: warm
    handover:
      description:
        - The overlapping restart's handover (see I(overlap)); C(null) when the program was restarted alone.
        - C(name) and C(node) of the handover program, C(pid) of its process during the restart, C(boot_seconds)
          from its start until it answered a ping, then, for its own quiesce and warm stop once the worker was
          back, C(active_tasks), C(handed_back), C(drain_seconds) and C(shutdown) as for the worker. In check mode
          only C(name) and C(node) are set.
      returned: always
      type: dict
      sample: {name: celery-customers-handover, node: celery@customers-handover.app1, pid: 4290, boot_seconds: 3.1,
               active_tasks: 2, handed_back: [], drain_seconds: 0.8, shutdown: warm}
    total_seconds:
      description: Seconds spent on this program (drain, restart and ping).
      returned: always
      type: float
      sample: 24.9
    changed:
      description: Whether this program was (or would be) signalled, started, stopped, added or removed.
      returned: always
      type: bool
      sample: true
    check_mode:
      description: Whether the values after are predictions of check mode.
      returned: always
      type: bool
      sample: false
diff:
  description: Supervisor state and main pid of every program, before and after.
  returned: when diff mode is enabled
  type: dict
  sample:
    before:
      celery-customers: {state: RUNNING, pid: 4242}
    after:
      celery-customers: {state: RUNNING, pid: 4317}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.celeryops.stack.plugins.module_utils.celery_cli import CeleryProbe  # noqa: E402
from ansible_collections.celeryops.stack.plugins.module_utils.celery_supervisor import (  # noqa: E402
    WorkerController,
    validate_params,
)
from ansible_collections.celeryops.stack.plugins.module_utils.supervisor_rpc import (  # noqa: E402
    DEFAULT_SOCKET,
    CeleryWorkerError,
    SupervisorClient,
)


def argument_spec():
    return dict(
        name=dict(type="str", aliases=["program"]),
        queue=dict(type="str"),
        state=dict(type="str", required=True, choices=["started", "stopped", "restarted", "present", "absent"]),
        timeout=dict(type="int", default=600),
        on_timeout=dict(type="str", default="fail", choices=["fail", "cold", "kill"]),
        start_timeout=dict(type="int", default=120),
        escalation_timeout=dict(type="int", default=30),
        poll_interval=dict(type="float", default=0.25),
        ping_timeout=dict(type="float", default=5.0),
        ping_command=dict(type="list", elements="str"),
        quiesce_timeout=dict(type="float", default=10.0),
        overlap=dict(type="bool", default=True),
        inspect_active=dict(type="bool", default=True),
        socket=dict(type="path", default=DEFAULT_SOCKET),
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("name", "queue")],
        required_one_of=[("name", "queue")],
        supports_check_mode=True,
    )
    errors = validate_params(module.params)
    if errors:
        module.fail_json(msg="; ".join(errors), changed=False, programs=[])

    def run_command(argv, environ_update=None):
        return module.run_command(argv, check_rc=False, environ_update=environ_update)

    probe = CeleryProbe(
        run_command,
        ping_timeout=module.params["ping_timeout"],
        ping_command=module.params["ping_command"],
        timeout_bin=module.get_bin_path("timeout"),
    )
    controller = WorkerController(SupervisorClient(module.params["socket"]), probe, module.params, module.check_mode)
    try:
        changed, result = controller.run()
    except CeleryWorkerError as exc:
        for warning in controller.warnings:
            module.warn(warning)
        module.fail_json(
            msg=exc.message,
            changed=any(item["changed"] for item in exc.programs) and not module.check_mode,
            programs=exc.programs,
        )
    for warning in controller.warnings:
        module.warn(warning)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()

"""Every log the stack writes has a rotation rule, and the broker keeps logging across a rotation.

On the app hosts supervisord writes and rotates every log: its own and one per program (the workers', Flower's),
each with a size limit and a number of files kept, in directories other accounts cannot enter. On the broker
Debian's logrotate (a dependency of rabbitmq-server, run daily by its timer) rotates /var/log/rabbitmq/*.log;
RabbitMQ opens a new file after the rotation instead of writing into the renamed one.
"""

import configparser
import re

import pytest

ROTATION = re.compile(r"^[1-9][0-9]*(KB|MB|GB)$")


def _config(host, path):
    with host.sudo():
        text = host.file(path).content_string
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",), strict=False)
    parser.read_string(text)
    return parser


@pytest.mark.parametrize("name", ["app1", "app2"])
@pytest.mark.reliability(
    "logs supervisord writes (its own, each worker's, Flower's)",
    "each a named file with a size limit and backups, in a directory others cannot enter",
)
def test_supervisor_logs_rotate(request, name, observe):
    host = request.getfixturevalue(name)
    with host.sudo():
        programs = host.check_output("ls /etc/supervisor/conf.d/").split()
    logs = []
    main = _config(host, "/etc/supervisor/supervisord.conf")["supervisord"]
    assert ROTATION.match(main["logfile_maxbytes"]), dict(main)
    assert int(main["logfile_backups"]) > 0, dict(main)
    logs.append(main["logfile"])
    for program_file in programs:
        config = _config(host, f"/etc/supervisor/conf.d/{program_file}")
        for section in config.sections():
            options = config[section]
            assert options.get("redirect_stderr") == "true", (section, dict(options))
            assert ROTATION.match(options["stdout_logfile_maxbytes"]), (section, dict(options))
            assert int(options["stdout_logfile_backups"]) > 0, (section, dict(options))
            logs.append(options["stdout_logfile"])
    with host.sudo():
        for log in logs:
            assert host.file(log).exists, log
            directory = host.file(log.rsplit("/", 1)[0])
            assert directory.user == "root", (log, directory.user)
            assert directory.mode & 0o007 == 0, (log, oct(directory.mode))
    observe(f"{len(logs)} logs: " + ", ".join(log.rsplit("/", 1)[1] for log in logs))
    # supervisord itself and at least one worker; on app1 Flower too.
    assert len(logs) >= 2


@pytest.mark.reliability(
    "a rotation of the broker's logs by Debian's logrotate (forced)",
    "the old log kept as .1, RabbitMQ writes its next line to a new file",
)
def test_broker_logs_rotate_and_rabbitmq_reopens(broker, observe):
    log = "/var/log/rabbitmq/rabbit@broker.log"
    state = "/var/lib/logrotate/celeryops-test.status"
    with broker.sudo():
        assert broker.service("logrotate.timer").is_enabled
        # The whole configuration (its `rotate 4` included), with a state file of its own.
        broker.run_expect([0], f"logrotate --force --state {state} /etc/logrotate.conf")
        broker.run(f"rm -f {state}")
        rotated = broker.file(log + ".1")
        assert rotated.exists, broker.check_output("ls -la /var/log/rabbitmq")
        marker = "celeryops log rotation probe"
        broker.run_expect([0], f"rabbitmqctl --quiet eval 'logger:warning(\"{marker}\").'")
        for _attempt in range(20):
            if broker.file(log).exists and marker in broker.file(log).content_string:
                break
            broker.run("sleep 0.5")
        new = broker.file(log)
        assert new.exists, "RabbitMQ did not open a new log after the rotation"
        assert marker in new.content_string
        assert marker not in rotated.content_string
        observe(f"{log}.1 kept ({rotated.size} bytes); the next line went to a new {log}")

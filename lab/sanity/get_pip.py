"""Offline bootstrap for ansible-test's virtual environments.

ansible-test bootstraps pip in each new virtual environment with a get-pip script it downloads from a host
that may be unreachable (closed networks, proxies). It looks for the script in its cache first; lab/sanity.sh
puts this file there. It installs the pip bundled with the standard library (ensurepip), then lets that pip
install what ansible-test asked for from the configured package index.
"""

import ensurepip
import os
import subprocess
import sys

# Options of the get-pip script that `pip install` does not know.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main(argv):
    saved_config = os.environ.get("PIP_CONFIG_FILE")
    ensurepip.bootstrap(upgrade=True)
    # ensurepip points PIP_CONFIG_FILE at /dev/null for itself; pip must see its configuration again (index,
    # CA bundle) to install the rest.
    env = dict(os.environ)
    env.pop("PIP_CONFIG_FILE", None)
    if saved_config is not None:
        env["PIP_CONFIG_FILE"] = saved_config
    wanted = [arg for arg in argv if arg not in GET_PIP_ONLY]
    return subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade", *wanted], env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

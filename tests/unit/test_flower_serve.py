"""Flower's /metrics handler is wrapped with the login check once (roles/flower/files/flower_serve.py).

The stack tests prove the result on a real Flower: /metrics without credentials gets 401, with them 200.
"""

# SPDX-License-Identifier: MIT

import importlib.util
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "roles" / "flower" / "files" / "flower_serve.py"
SPEC = importlib.util.spec_from_file_location("flower_serve", SCRIPT)
serve = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(serve)


def refuse_anonymous(method):
    """A stand-in for tornado.web.authenticated: no user, no answer."""

    def wrapper(self):
        if not self.user:
            raise PermissionError("401")
        return method(self)

    return wrapper


def make_handler():
    class Metrics:
        def __init__(self, user):
            self.user = user

        def get(self):
            return "metrics"

    return Metrics


def test_the_page_answers_only_a_logged_in_user():
    handler = make_handler()
    assert serve.require_login(handler, refuse_anonymous) is True
    assert handler("admin").get() == "metrics"
    with pytest.raises(PermissionError, match="401"):
        handler(None).get()


def test_a_second_call_does_not_wrap_again():
    handler = make_handler()
    serve.require_login(handler, refuse_anonymous)
    first = handler.get
    assert serve.require_login(handler, refuse_anonymous) is False
    assert handler.get is first

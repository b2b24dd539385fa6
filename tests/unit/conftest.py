# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSE)
# SPDX-License-Identifier: MIT
"""Make the checkout importable as ``ansible_collections.celeryops.stack`` for the unit tests.

The link ``collections/ansible_collections/celeryops/stack -> ../../..`` is git-ignored (``make collection-link``
creates it too); it is made here when missing so that ``pytest tests/unit`` works from a fresh clone.
"""

from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "celeryops", "stack")

if not os.path.lexists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(os.path.join("..", "..", ".."), LINK)

if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

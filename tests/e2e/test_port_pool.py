"""An exhausted local-port pool: new connections are refused and counted
(`port_exhausted`), established ones finish intact, memory stays bounded."""

from __future__ import annotations

import rvslab
from test_limits import LIMIT, check_limit


def rvsd_config(text: str) -> str:
    return rvslab.set_key(text, "dataplane", "local_port_range", f'"2000-{2000 + LIMIT - 1}"')


def test_exhausted_port_pool_refuses_new_keeps_established(lab):
    check_limit(lab, "port_exhausted")

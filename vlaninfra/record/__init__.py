"""Known-good records: what each apply put on the hosts, kept in the stack's own state.

The program exports one stack output, ``vlaninfra`` = ``{"format": 1, "records": [...]}``.
Each record says what one apply did: its version (vlaninfra's own counter: the file backend's
history has no version numbers and no `stack export --version`), time, who, the action (`up`,
`rollback`, `pulumi up`), its status, the vlaninfra version, a summary, the layout as applied
(the `vlaninfra:sites` config; kept secret in state when that config value is a secret), the
plan's pinned allocations and every container's address and MAC. The program reads the
previous records of its own stack (the engine's `readStackOutputs` invoke: no resource added,
any backend) and appends. Layouts are kept for the newest `KEEP_LAYOUTS` records.

Statuses: `applied` (the controller's apply went through; verification still to come),
`verified` / `failed-verification` (set in place by the controller's finalize run),
`apply-failed` (written by the controller after a failed apply), `unverified` (a plain
`pulumi up`); a windowed apply (`vlaninfra.window`) is `pending` once verified, then
`verified` (confirmed), `expired`, `rolled-back` or `superseded`.

`vlaninfra up` / `rollback` (`vlaninfra.rollout`) steer the program through one environment
variable, `VLANINFRA_ROLLOUT`, naming a JSON file (`Control`). Phase ``apply``: the layout
(the config's, or a rollback's `layout` and `pins`) is applied and recorded as version
``last + 1``, status `applied`. Phase ``finalize`` (run with ``--target`` the stack resource
alone, so the engine changes no resource): the program plans record ``version`` again with its
own allocations, checks it plans the very addresses and MACs recorded, verifies through the
agents, writes the report and sets that record's status in place. So verification always sees
the state the whole `pulumi up`, deletes included, left, and a record says `verified` only
when its apply succeeded. ``last`` is the newest version the controller read: a program that
reads other records (a backend error, a concurrent update) stops before changing anything.
Without the variable the program is a plain `pulumi up`: the stack config's layout, the last
record's allocations pinned, no verification; an unreadable record output stops it too.

Example (the program)::

    ctl = record.control()
    previous = record.previous_records(ctl)
    layout_value, pinned = record.target(config_sites, previous.records, ctl)
    the_plan = plan(layout, previous=pinned)
    ...
    record.export(layout_value, the_plan, resources, previous, ctl, verify=...)

Parts: `_control` (the control file and the names the controller shares), `_history` (the
records as data: new, pinned, pruned, finalized, failed), `_state` (reading the records from the
stack's state and exporting them).
"""

from __future__ import annotations

from ._control import FORMAT, OUTPUT, REFUSED, ROLLOUT_ENV, Control, control, who
from ._history import (
    KEEP_LAYOUTS,
    KEEP_RECORDS,
    check_exact,
    finalized,
    last_applied,
    new_record,
    next_records,
    pins,
    prune,
    records_of,
    summary,
    target,
    with_failure,
)
from ._state import Previous, custom_resources, export, previous_records

__all__ = [
    "FORMAT",
    "KEEP_LAYOUTS",
    "KEEP_RECORDS",
    "OUTPUT",
    "REFUSED",
    "ROLLOUT_ENV",
    "Control",
    "Previous",
    "check_exact",
    "control",
    "custom_resources",
    "export",
    "finalized",
    "last_applied",
    "new_record",
    "next_records",
    "pins",
    "previous_records",
    "prune",
    "records_of",
    "summary",
    "target",
    "who",
    "with_failure",
]

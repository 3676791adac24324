"""`make mutation`: break each documented guarantee once and run the tests the docs name for it.

    .venv/bin/python tests/reliability/mutation.py [--only NAME ...] [--list]

Each mutation replaces one snippet of a critical module (pager, incremental sync and deletion
detection, self-check, snapshot switch, ledger, outbox, signing, retry) in a scratch copy of
the checkout, runs the named tests against that copy (PYTHONPATH puts its package first) and
reports whether they failed (caught) or passed (missed). The checkout itself is never changed.
A missed mutation of a documented guarantee is a defect: of the code or of its tests.
Not part of `make test` (about three minutes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MATRIX = "tests/reliability/test_fault_matrix.py::test_fault_loses_nothing"
LIVE = "tests/reliability/test_live_traffic.py"
OLD_DELETIONS = "test_incremental_sync_finds_deletions_of_old_orders_in_the_same_sync"
SKIP_COPY = {".venv", ".git", "data", ".pytest_cache", ".ruff_cache", ".hypothesis", "storage"}


@dataclass(frozen=True)
class Mutation:
    name: str
    guarantee: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = [
    Mutation(
        "pager-no-hole-reread", "a listing re-reads the holes deletions leave",
        "alter_pipeline/api/paging/pager.py",
        "while self._ordered and (holes := self._coverage.holes()):",
        "while False and (holes := self._coverage.holes()):",
        (f"{MATRIX}[churn-while-paging]", "tests/api/test_paging.py"),
    ),
    Mutation(
        "incremental-never-deletes", "an incremental sync records the deletions it finds",
        "alter_pipeline/sync.py",
        "        con, writer, parent, flat.orders, flat.items, updates.deleted",
        "        con, writer, parent, flat.orders, flat.items, []",
        (f"{MATRIX}[latency-spikes]", f"{LIVE}::{OLD_DELETIONS}"),
    ),
    Mutation(
        "still-there-proves-nothing", "an id-less record neither hides nor fakes a deletion",
        "alter_pipeline/sync.py",
        "    while pending:\n        chunk = pending.pop()",
        "    while False:\n        chunk = pending.pop()",
        (f"{MATRIX}[missing-id]", "tests/reliability/test_bad_records.py"),
    ),
    Mutation(
        "ghosts-kept", "a full listing drops orders deleted after their page was read",
        "alter_pipeline/sync.py",
        '        report.check.path = "skipped"\n',
        '        report.check.path = "skipped"\n    if True:\n        return\n',
        (f"{LIVE}::test_full_sync_drops_an_order_deleted_after_its_page_was_read",),
    ),
    Mutation(
        "locate-sees-no-extra", "the self-check locates deleted orders",
        "alter_pipeline/selfcheck.py",
        "found.extra.update(i for i in held.between(low, high) if i not in listed)",
        "found.extra.update(())",
        ("tests/test_selfcheck.py",),
    ),
    Mutation(
        "switch-not-atomic", "readers see one snapshot or the other, the link never missing",
        "alter_pipeline/lake/snapshot.py",
        "        os.symlink(target, staged_link)\n"
        "        os.replace(staged_link, self.link)  # the one atomic switch readers observe",
        "        if self.link.is_symlink():\n            self.link.unlink()\n"
        "        os.symlink(target, self.link)",
        ("tests/lake/test_snapshot_readers.py",),
    ),
    Mutation(
        "remote-switch-not-atomic", "on the object store CURRENT is one write, never missing",
        "alter_pipeline/lake/remote.py",
        '        data = json.dumps({"snapshot_id": snapshot_id}).encode()\n',
        '        data = json.dumps({"snapshot_id": snapshot_id}).encode()\n'
        "        if not self.is_local and expected is not None and expected.snapshot_id:\n"
        "            self.fs.delete_file(self.path(CURRENT))\n"
        "            self.write_bytes(CURRENT, data)\n"
        "            return\n",
        ("tests/lake/test_remote_snapshot_readers.py",),
    ),
    Mutation(
        "ledger-forgets-applied", "a transition is never applied twice",
        "alter_pipeline/rules/ledger.py",
        'return f"already applied by run {owner}"',
        "pass",
        ("tests/rules/test_rules_apply.py",),
    ),
    Mutation(
        "failed-patch-aborts-run", "one failed PATCH fails its order, not the run",
        "alter_pipeline/rules/apply.py",
        "        except Exception as error:  # recorded; the other orders go on",
        "        except NotImplementedError as error:",
        ("tests/rules/test_rules_apply.py::test_random_server_faults_never_leave_an_order_"
         "half_recorded",),
    ),
    Mutation(
        "outbox-loses-order", "events of one order are delivered in order",
        "alter_pipeline/webhooks/outbox.py",
        "      AND p.state = 'pending' AND p.sequence < d.sequence)\nORDER BY d.sequence",
        "      AND p.state = 'pending' AND p.sequence < d.sequence AND 0)\nORDER BY d.sequence",
        ("tests/webhooks/test_webhook_delivery.py", "tests/webhooks/test_webhook_outbox.py"),
    ),
    Mutation(
        "signature-off-by-a-second", "webhooks are signed over the exact id, time and body",
        "alter_pipeline/webhooks/signing.py",
        'signature = Webhook(secret).sign(webhook_id, at, body.decode("utf-8"))',
        'signature = Webhook(secret).sign(webhook_id, at.replace(second=(at.second + 1) % 60),'
        ' body.decode("utf-8"))',
        ("tests/webhooks/test_webhook_package.py", "tests/webhooks/test_webhook_receiver.py"),
    ),
    Mutation(
        "client-ignores-retry-after", "the client waits as long as Retry-After says",
        "alter_pipeline/api/retry.py",
        "delay = retry_after if retry_after is not None else self.policy.backoff(self.attempt)",
        "delay = self.policy.backoff(self.attempt)",
        (f"{MATRIX}[429-storm-retry-after-seconds]",),
    ),
    Mutation(
        "deliverer-ignores-retry-after", "the webhook deliverer waits as Retry-After says",
        "alter_pipeline/webhooks/delivery.py",
        "delay = None if delay is None else max(delay, asked)",
        "pause_until = None",
        (f"{MATRIX}[429-storm-retry-after-http-date]",),
    ),
]  # fmt: skip


def scratch_copy() -> Path:
    target = Path(tempfile.mkdtemp(prefix="alter-mutation-")) / "checkout"
    shutil.copytree(ROOT, target, ignore=lambda _, names: SKIP_COPY & set(names))
    return target


def run_mutation(copy: Path, mutation: Mutation) -> tuple[str, float]:
    path = copy / mutation.path
    original = path.read_text("utf-8")
    if original.count(mutation.old) != 1:
        return "snippet not found", 0.0
    path.write_text(original.replace(mutation.old, mutation.new), "utf-8")
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               *mutation.tests]  # fmt: skip
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, timeout=600)
    finally:
        path.write_text(original, "utf-8")
    outcome = "caught" if done.returncode == 1 else "missed" if done.returncode == 0 else (
        f"error (pytest exit {done.returncode})")  # fmt: skip
    return outcome, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="run only these mutations (names)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:<30} {m.path}: {m.guarantee}")
        return 0
    copy = scratch_copy()
    print("| mutation | guarantee | tests | outcome | s |\n|---|---|---|---|---|")
    missed = 0
    try:
        for mutation in chosen:
            outcome, seconds = run_mutation(copy, mutation)
            missed += outcome != "caught"
            tests = ", ".join(f"`{t.removeprefix('tests/')}`" for t in mutation.tests)
            print(f"| {mutation.name} | {mutation.guarantee} | {tests} | {outcome} | "
                  f"{seconds:.0f} |", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)
    print(f"\n{len(chosen) - missed} caught, {missed} missed or broken of {len(chosen)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

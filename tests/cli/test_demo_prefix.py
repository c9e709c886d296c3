"""The demo's clients fingerprint their request bodies exactly as the iRule does (the rule itself, run under
tclsh), and requests about one document share their leading fingerprints."""

from __future__ import annotations

import json
import random

import pytest

from llmsched.cli.demo_prefix import completion_body, document, fingerprints

from tests.deploy.tcl_harness import needs_tclsh
from tests.deploy.test_irule_prefix import RULES, tcl_fingerprints


@needs_tclsh
@pytest.mark.parametrize("rule", RULES, ids=lambda p: p.name)
def test_the_demo_fingerprints_a_body_exactly_as_the_irule(rule):
    body = completion_body(random.Random(3))
    assert len(fingerprints(body)) >= 6
    assert fingerprints(body) == tcl_fingerprints(rule, body)


def test_requests_about_one_document_share_its_leading_fingerprints_and_no_more():
    rng = random.Random(1)
    bodies = [completion_body(rng) for _ in range(40)]
    by_doc: dict[str, list[list[str]]] = {}
    for body in bodies:
        prompt = json.loads(body)["prompt"]
        by_doc.setdefault(prompt.split(".", 1)[0], []).append(fingerprints(body))
    shared = len(document(0).encode()) // 512 - 1  # blocks wholly inside the document (after `{"model"...`)
    pairs = [fps for fps in by_doc.values() if len(fps) > 1]
    assert pairs
    for a, b, *_ in pairs:
        assert a[:shared] == b[:shared]
    firsts = {fps[0][0] for fps in by_doc.values()}
    assert len(firsts) == len(by_doc)  # different documents differ from the first block

from typing import Any

import pytest
from event_helpers import Syncer

from alter_pipeline.sync import IncrementalPolicy


@pytest.fixture
def syncer_factory(tmp_path):
    made: list[Syncer] = []

    def make(emulator: Any, **policy: Any) -> Syncer:
        syncer = Syncer(emulator, tmp_path, IncrementalPolicy(**policy))
        made.append(syncer)
        return syncer

    yield make
    for syncer in made:
        syncer.close()

"""RunBatches: one iterator for a run, released without stalling the caller."""

import threading

import tensorflow as tf

from kgpt2.training.batches import RELEASE_THREAD_NAME
from kgpt2.training.batches import RunBatches


class Teardown:
    """Stands in for a tf.data iterator: records the thread that destroys it.

    A real iterator's destructor waits for its pipeline's work in flight,
    for tens of seconds on a busy machine; whichever thread drops the last
    reference waits.
    """

    def __init__(self, seen):
        self.seen = seen

    def __del__(self):
        self.seen.append(threading.current_thread().name)


def test_batches_continue_across_generators_and_put_back_unused():
    batches = RunBatches(tf.data.Dataset.range(6).batch(2), start_step=1)
    first = batches.generator()
    assert [next(first).numpy().tolist() for _ in range(2)] == [[2, 3], [4, 5]]
    batches.keep_unused(trained=1)  # the call peeked at [4, 5] but did not train on it
    assert next(batches.generator()).numpy().tolist() == [4, 5]


def test_close_leaves_the_iterator_teardown_to_its_own_thread(monkeypatch):
    # The stall happened when the release thread finished before close()
    # returned; joining it inside start() makes that order certain.
    start = threading.Thread.start

    def start_and_finish(thread):
        start(thread)
        thread.join()

    monkeypatch.setattr(threading.Thread, "start", start_and_finish)
    batches = RunBatches(tf.data.Dataset.range(4).batch(2))
    seen = []
    batches._iterator = Teardown(seen)
    batches.close()
    assert seen == [RELEASE_THREAD_NAME]

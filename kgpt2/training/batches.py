"""A run's training batches: one tf.data iterator that every `fit` call continues."""

import collections
import threading

import tensorflow as tf

RELEASE_THREAD_NAME = "kgpt2-release-batches"


def _release(iterator):
    """Drop `iterator` (the thread's arguments hold the last reference)."""
    del iterator


class RunBatches:
    """The batches of steps `start_step + 1, ...` of a run, as model inputs.

    A resumed run may need several `fit` calls (see `fit_segments`). Each
    call over a `tf.data.Dataset` would start a new iterator, and a new
    iterator reshuffles differently (seeded shuffles draw a new order per
    iterator), so the resumed run would see other batches than an
    uninterrupted one. Instead, all calls read from one iterator through
    `generator()`. Keras peeks at the first batches of a generator to learn
    their shapes; `keep_unused` puts back what a call peeked but did not
    train on.

    Args:
        dataset: the training `tf.data.Dataset`; repeated if finite.
        start_step: batches to skip (those trained before a resume).
        preprocessor: mapped over the batches when they are text.

    Example:
    ```python
    import tensorflow as tf
    from kgpt2.training.batches import RunBatches

    batches = RunBatches(tf.data.Dataset.range(5).batch(2), start_step=1)
    feed = batches.generator()
    print([next(feed).numpy().tolist() for _ in range(3)])  # [[2, 3], [4], [0, 1]]
    ```
    """

    def __init__(self, dataset, start_step=0, preprocessor=None):
        if dataset.cardinality() != tf.data.INFINITE_CARDINALITY:
            dataset = dataset.repeat()
        dataset = dataset.skip(start_step)
        if preprocessor is not None:
            # Tokenize one batch at a time, one batch ahead at most: an
            # iterator's teardown waits for the work it has in flight, and
            # autotuned parallel maps left enough of it to stall for 20-48 s
            # after training on a busy machine.
            dataset = dataset.map(lambda *batch: preprocessor(*batch))
        self._iterator = iter(dataset.prefetch(1))
        self._pending = collections.deque()
        self._handed = 0
        self._recent = collections.deque(maxlen=16)

    def generator(self):
        """A generator over the next batches, for one `fit` call."""
        self._handed = 0
        self._recent.clear()
        while True:
            batch = self._pending.popleft() if self._pending else next(self._iterator)
            self._handed += 1
            self._recent.append(batch)
            yield batch

    def close(self):
        """Release the iterator without waiting for its teardown.

        A tf.data iterator's destructor waits for the work its pipeline
        has in flight (packing, prefetching): seconds of silence after
        training on a busy machine. The last reference goes to a daemon
        thread, so the destructor runs there while the caller goes on.
        """
        self._pending.clear()
        self._recent.clear()
        # No local name may hold the iterator here: if the thread finished
        # first, the destructor would run when this frame ends, on the
        # caller's thread (seen: 16-25 s of silence after a fine-tune).
        release = threading.Thread(target=_release, args=(self._iterator,), daemon=True,
                                   name=RELEASE_THREAD_NAME)
        self._iterator = None
        release.start()

    def keep_unused(self, trained):
        """After a `fit` call that trained `trained` batches, keep the rest."""
        unused = self._handed - trained
        if not 0 <= unused <= len(self._recent):
            raise RuntimeError(f"fit took {self._handed} batches but trained {trained}.")
        for batch in reversed(list(self._recent)[len(self._recent) - unused:]):
            self._pending.appendleft(batch)

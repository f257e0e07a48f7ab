"""Training over several processes with JAX's distributed runtime.

One process per host (or per accelerator) joins the group with
`connect_processes`, which calls `jax.distributed.initialize`; after that
`keras.distribution` lays models out over the devices of every process,
and gradients are reduced across processes inside the compiled step.
kgpt2 adds three things on top:

- each process feeds only its own rows of every batch (`shard_batches`);
- only process 0 (`is_writer()`) writes run files, and the others wait
  for it at a barrier (`barrier`), so nobody reads a half-written run;
- values sharded across processes are gathered where a whole copy is
  needed (`host_array`, `gathered`: saving a checkpoint, copying weights);
- options come from flags or, unset, from the environment variables JAX's
  own cluster detection reads (`JAX_COORDINATOR_ADDRESS`, SLURM, Open MPI,
  Cloud TPU), plus `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID`.

`connect_processes` must run before JAX computes anything (before the
model is loaded): that is where the runtime picks its devices.
"""

import contextlib
import os

from kgpt2.checks import check_integer
from kgpt2.errors import InputError

COORDINATOR_VARIABLE = "JAX_COORDINATOR_ADDRESS"
NUM_PROCESSES_VARIABLE = "JAX_NUM_PROCESSES"
PROCESS_ID_VARIABLE = "JAX_PROCESS_ID"
# Variables whose presence means a launcher JAX can read started us.
_CLUSTER_VARIABLES = ("OMPI_MCA_orte_hnp_uri", "TPU_WORKER_HOSTNAMES", "TPU_PROCESS_ADDRESSES")


def _environment_integer(name):
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise InputError(f"Environment variable {name}={value!r} must be an integer.") from None


def _launched_by_cluster():
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        return True
    return any(name in os.environ for name in _CLUSTER_VARIABLES)


def process_options(num_processes=None, process_id=None, coordinator=None):
    """Resolve the process group's options from arguments, then the environment.

    Returns `(num_processes, process_id, coordinator)`; values still None
    are left to JAX's cluster detection. Returns `(1, 0, None)` when
    nothing asks for several processes.

    Example:
    ```python
    from kgpt2.training.processes import process_options

    print(process_options(2, 1, "127.0.0.1:1234"))  # (2, 1, '127.0.0.1:1234')
    ```
    """
    owner = "processes"
    num_processes = num_processes if num_processes is not None else _environment_integer(NUM_PROCESSES_VARIABLE)
    process_id = process_id if process_id is not None else _environment_integer(PROCESS_ID_VARIABLE)
    coordinator = coordinator or os.environ.get(COORDINATOR_VARIABLE) or None
    check_integer(owner, "num_processes", num_processes, minimum=1, allow_none=True)
    check_integer(owner, "process_id", process_id, minimum=0, allow_none=True)
    if num_processes is not None and process_id is not None and process_id >= num_processes:
        raise InputError(
            f"process_id={process_id} must be below num_processes={num_processes} "
            "(processes are numbered from 0)."
        )
    if coordinator is not None and ":" not in str(coordinator):
        raise InputError(
            f"coordinator must be HOST:PORT (process 0's address), got {coordinator!r}."
        )
    asked = (num_processes or 1) > 1 or coordinator is not None or _launched_by_cluster()
    if not asked:
        return 1, 0, None
    return num_processes, process_id, coordinator


def connect_processes(num_processes=None, process_id=None, coordinator=None, timeout_s=300):
    """Join this process to a multi-process training group (`jax.distributed.initialize`).

    Call it in every process, before loading a model. Unset options come
    from the environment (see `process_options`); with none at all this is
    a single process and nothing happens. Calling it again with the same
    options does nothing. On CPUs the processes reduce gradients with Gloo.

    Args:
        num_processes: how many processes train together.
        process_id: this process's number, 0 to `num_processes - 1`;
            process 0 writes the run's files.
        coordinator: `HOST:PORT` of process 0, reachable by every process.
        timeout_s: how long to wait for the other processes to connect.

    Returns:
        `(process_count, process_index)` of the group.

    Raises:
        InputError: bad options, or JAX already computed something in this
            process (connect before loading the model).

    Example:
    ```python
    import kgpt2

    # Nothing asked for more than one process:
    print(kgpt2.connect_processes())  # (1, 0)
    ```
    """
    import jax

    if jax.distributed.is_initialized():
        count, index = jax.process_count(), jax.process_index()
        if (num_processes not in (None, count)) or (process_id not in (None, index)):
            raise InputError(
                f"This process already joined a group as process {index} of {count}; "
                f"it can't join again as {process_id} of {num_processes}."
            )
        return count, index
    num_processes, process_id, coordinator = process_options(num_processes, process_id, coordinator)
    if num_processes == 1 and coordinator is None:
        return 1, 0
    # Gloo gives CPU devices cross-process collectives; accelerators use
    # their own (NCCL, ICI), so the setting is harmless there.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=int(timeout_s),
        )
    except RuntimeError as error:
        if "before" in str(error).lower():
            raise InputError(
                "connect_processes() must run before JAX computes anything in this "
                "process: call it (or pass --num-processes to `kgpt2 finetune`) "
                "before loading the model."
            ) from None
        raise
    return jax.process_count(), jax.process_index()


def disconnect_processes():
    """Leave the process group, once every process has come to leave it (no-op alone).

    Process 0 hosts the group's coordinator: a process that ends without
    leaving can take it away from the others while they finish (they then
    abort). Interpreter exit leaves by itself; call this before ending a
    process abruptly (`os._exit`).

    Example:
    ```python
    from kgpt2.training.processes import disconnect_processes

    disconnect_processes()  # alone: nothing to leave
    ```
    """
    import sys

    if "jax" not in sys.modules:  # never connected
        return
    import jax

    if jax.distributed.is_initialized():
        jax.distributed.shutdown()


def process_count():
    """How many processes train together (1 without `connect_processes`).

    Example:
    ```python
    from kgpt2.training.processes import process_count

    print(process_count())  # 1
    ```
    """
    import jax

    return jax.process_count()


def is_writer():
    """Whether this process writes the run's files: process 0 does.

    Example:
    ```python
    from kgpt2.training.processes import is_writer

    # In a single process:
    print(is_writer())  # True
    ```
    """
    import jax

    return jax.process_index() == 0


def barrier(name):
    """Wait until every process reaches the barrier called `name` (no-op alone).

    Example:
    ```python
    from kgpt2.training.processes import barrier

    barrier("checkpoint written")
    ```
    """
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def shard_batches(dataset, num_shards, index):
    """This process's rows of every batch of `dataset`: the `index`-th of `num_shards` equal parts.

    The parts are contiguous, so the processes' parts, in process order,
    make up the whole batch again (that is how JAX assembles the global
    batch). Every batch's size must divide by `num_shards`.

    Example:
    ```python
    import tensorflow as tf
    from kgpt2.training.processes import shard_batches

    batches = tf.data.Dataset.range(8).batch(4)
    print([b.numpy().tolist() for b in shard_batches(batches, 2, 1)])  # [[2, 3], [6, 7]]
    ```
    """
    import tensorflow as tf

    if num_shards == 1:
        return dataset

    def rows(tensor):
        size = tf.shape(tensor)[0]
        tf.debugging.assert_equal(
            size % num_shards, 0,
            message=f"a batch's size doesn't divide by the {num_shards} processes: "
            "use a batch size that does (and drop the remainder)",
        )
        part = size // num_shards
        return tensor[index * part:(index + 1) * part]

    return dataset.map(
        lambda *batch: tf.nest.map_structure(rows, batch if len(batch) > 1 else batch[0])
    )


def _spans_processes(value):
    """Whether no process holds all of `value` (a JAX array sharded across processes)."""
    import jax

    return (isinstance(value, jax.Array) and not value.is_fully_addressable
            and not value.is_fully_replicated)


def _replicated(values):
    """`values` (JAX arrays), each copied whole onto every device of its mesh, in one program."""
    import jax

    shardings = [value.sharding.update(spec=jax.sharding.PartitionSpec()) for value in values]
    return jax.jit(lambda arrays: arrays, out_shardings=shardings)(values)


def host_array(value):
    """`value` as one NumPy array in this process, gathered if it is sharded across processes.

    Every process of the group must call it with the same array (the
    gather is a collective), as they all do running the same training
    code.

    Example:
    ```python
    import jax.numpy as jnp
    from kgpt2.training.processes import host_array

    print(host_array(jnp.arange(3)).tolist())  # [0, 1, 2]
    ```
    """
    import numpy as np

    if _spans_processes(value):
        (value,) = _replicated([value])
    return np.asarray(value)


@contextlib.contextmanager
def gathered(variables):
    """Within the block, each of `variables` sharded across processes holds its whole value.

    Keras reads a variable's value into NumPy when saving, which a value
    spread over processes can't give. Inside the block every such
    variable holds a copy replicated on each of its devices (one gathering
    program for all of them); after it, the sharded value again. Every
    process must enter the block with the same variables. Saving is the
    one time a process holds the whole model: loading and training keep it
    sharded.

    Example:
    ```python
    import kgpt2
    from kgpt2.training.processes import gathered

    lm = kgpt2.load("gpt2_tiny_random", sequence_length=32)
    with gathered(lm.variables):
        print(len(lm.get_weights()))  # 36
    ```
    """
    # Keras has no public way to put a value of another layout in a
    # variable (assign lays it out again): swap its private `_value`.
    spread = [variable for variable in variables if _spans_processes(variable._value)]
    originals = [variable._value for variable in spread]
    try:
        if spread:
            for variable, whole in zip(spread, _replicated(originals)):
                variable._value = whole
        yield
    finally:
        for variable, original in zip(spread, originals):
            variable._value = original

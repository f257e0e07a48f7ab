"""Give memory the process freed back to the system."""


def return_freed_memory():
    """Ask glibc to hand its freed heap memory back to the system.

    glibc keeps freed blocks in its heaps for reuse, so the one-off peaks of
    reading a checkpoint or compiling a program would
    stay in the process's resident memory. Returns whether it could ask:
    False where the C library is not glibc.

    Example:
    ```python
    from kgpt2.heap import return_freed_memory

    print(return_freed_memory() in (True, False))  # True
    ```
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True

"""Assembly: a configuration turned into a running actor graph (instruments, processors, storage, live service)."""

"""`gguf-serve run` at a terminal (a pseudo-terminal, as a person's): a message answered,
a second that carries the first, /clear, and /bye, which ends it with status 0; or, with
EXPECTED_JSON `"stop"`, Ctrl-C during a long answer stops the answer and not the program.

Run by tests/run_cli.rs as `run_chat.py EXPECTED_JSON BINARY ARGS...`: EXPECTED_JSON holds the
two answers the API gave for the same conversation.
"""

import json
import os
import pty
import re
import select
import sys
import time

expected = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])

screen = b""


def read_until(marker: bytes, timeout: float = 120) -> bytes:
    """Reads the terminal until `marker` shows (after what was read before)."""
    global screen
    start = len(screen)
    deadline = time.time() + timeout
    while marker not in screen[start:]:
        assert time.time() < deadline, f"no {marker!r} on the terminal: {screen[start:]!r}"
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                screen += os.read(fd, 4096)
            except OSError:
                break
    assert marker in screen[start:], f"the program ended before {marker!r}: {screen[start:]!r}"
    return screen[start:]


def plain(raw: bytes) -> str:
    """The text without the terminal's control sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode(errors="replace")).replace("\r", "")


read_until(b">>> ")
if expected == "stop":
    # --ignore-eos and no token limit: the answer ends only when the context is full, about
    # a minute away; the prompt comes back at once only if Ctrl-C stopped it.
    os.write(fd, b"Write a very long story.\r")
    read_until(b"\n")
    time.sleep(0.5)
    os.write(fd, b"\x03")
    stopped = time.time()
    read_until(b">>> ", timeout=10)
    assert time.time() - stopped < 5, "the answer went on after Ctrl-C"
    os.write(fd, b"/bye\r")
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    print("run chat: ok")
    sys.exit(0)
for message, answer in zip(["Say hello", "Once more"], expected):
    os.write(fd, message.encode() + b"\r")
    shown = plain(read_until(b">>> "))
    # The echoed message, the answer, a blank line, the next prompt.
    assert shown.startswith(message + "\n"), shown
    assert shown[len(message) + 1 :].rstrip().removesuffix(">>>").rstrip() == answer.rstrip(), (shown, answer)
os.write(fd, b"/clear\r")
assert "(a new chat)" in plain(read_until(b">>> "))
os.write(fd, b"/bye\r")
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
print("run chat: ok")

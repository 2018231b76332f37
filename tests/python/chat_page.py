"""Debian's chromium, headless, drives gguf-serve's chat page as a person would.

Run by tests/chat_page.rs as `chat_page.py MODE BASE_URL`, with the browser spoken to over the
DevTools protocol on a pipe (--remote-debugging-pipe: no extra package):
  chat  the demo model: the page names the model; settings saved through the dialog; a message
        sent with Enter streams an answer equal to the API's greedy one, with its speed; a
        second turn carries the first; the conversation survives a reload; Stop ends a long
        answer and keeps what came; text is shown as text, never as HTML; a chat is deleted;
  key   a server started with --api-key: the page shows the server's error until the key is
        set in the settings, then answers.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request


class Browser:
    """A headless chromium and one page of it."""

    def __init__(self):
        chromium = shutil.which("chromium")
        assert chromium, "Debian's chromium is missing: run scripts/test.sh, or apt-get install chromium"
        self.profile = tempfile.mkdtemp()
        to_browser, self.write_fd = os.pipe()
        self.read_fd, from_browser = os.pipe()

        def pipes():
            # The browser reads commands from fd 3 and writes answers to fd 4. The pipes may
            # sit on those numbers already, close-on-exec: copy them away, then back, as
            # inheritable descriptors.
            read_end, write_end = os.dup(to_browser), os.dup(from_browser)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={self.profile}", "--no-first-run", "about:blank"],
            preexec_fn=pipes, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self.buffer = b""
        self.next_id = 0
        self.session = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.read_fd, 1 << 16)
                assert chunk, "the browser closed its pipe"
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                assert "error" not in answer, (method, answer["error"])
                return answer["result"]

    def eval(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, (expression, result["exceptionDetails"])
        return result["result"].get("value")

    def wait(self, expression, what, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {expression}")

    def open(self, url):
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && !!document.getElementById('input')", "the page")

    def close(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def api_answer(base_url, messages, max_tokens, key=None, model=None):
    body = {"messages": messages, "temperature": 0, "max_tokens": max_tokens}
    if model:
        body["model"] = model
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"{base_url}/v1/chat/completions", json.dumps(body).encode(), headers)
    return json.load(urllib.request.urlopen(request))["choices"][0]["message"]["content"]


SETTLED = "!document.getElementById('send').hidden"
# What the page shows: each message's kind, and its text (an answer's is rendered Markdown).
MESSAGES = "[...document.querySelectorAll('#messages .message')].map(m => [m.className, m.querySelector('.content').textContent])"
# What the page keeps of the open chat: each message's role and raw text.
KEPT = "JSON.parse(localStorage.getItem('gguf-serve.chats'))[0].messages.map(m => [m.role, m.error || m.content])"


def settings(page, temperature, max_tokens, key=""):
    """Fills in and saves the settings dialog."""
    page.eval("document.getElementById('open-settings').click()")
    page.wait("document.getElementById('settings').open", "the settings dialog")
    page.eval(f"""(() => {{
        document.getElementById('temperature').value = {temperature};
        document.getElementById('max-tokens').value = {max_tokens};
        document.getElementById('api-key').value = {json.dumps(key)};
        document.getElementById('save-settings').click();
    }})()""")
    saved = f"""(() => {{
        const s = JSON.parse(localStorage.getItem('gguf-serve.settings') || '{{}}');
        return s.temperature === {temperature} && s.maxTokens === {max_tokens} && s.apiKey === {json.dumps(key)};
    }})()"""
    page.wait(saved, "the settings to be saved")


def say(page, text):
    """Types a message and presses Enter, as a person does; waits for the whole answer."""
    page.eval(f"""(() => {{
        const input = document.getElementById('input');
        input.value = {json.dumps(text)};
        input.dispatchEvent(new KeyboardEvent('keydown', {{key: 'Enter', bubbles: true}}));
    }})()""")
    page.wait("!document.getElementById('stop').hidden || document.querySelectorAll('.message').length > 0", "the send")
    page.wait(SETTLED, "the answer")
    shown = page.eval(MESSAGES)
    kept = page.eval(KEPT)
    # An error is shown in the answer's place.
    kinds = ["assistant" if kind.endswith("error") else kind.split()[-1] for kind, _ in shown]
    assert kinds == [role for role, _ in kept], (shown, kept)
    assert all(text for _, text in shown), shown
    return kept


def chat(page, base_url):
    page.open(f"{base_url}/")
    name = page.wait("document.getElementById('model').textContent.includes('gemma') && document.getElementById('model').textContent", "the model's name")
    assert name == "gemma-3-270m-q4_k_m.gguf", name
    settings(page, 0, 16)

    hello = [{"role": "user", "content": "Say hello"}]
    # The page's request finds the prompt cached, as the API's second request does: compare
    # answers made from the same cache state (a near-tie can flip between batched and
    # one-row kernels).
    api_answer(base_url, hello, 16)
    expected = api_answer(base_url, hello, 16)
    shown = say(page, "Say hello")
    assert shown == [["user", "Say hello"], ["assistant", expected]], (shown, expected)
    stats = page.eval("document.querySelector('.message.assistant .stats').textContent")
    assert "prompt tokens at" in stats and "t/s" in stats, stats

    second = hello + [{"role": "assistant", "content": expected}, {"role": "user", "content": "Once more"}]
    api_answer(base_url, second, 16)
    again = api_answer(base_url, second, 16)
    shown = say(page, "Once more")
    assert [m[1] for m in shown] == ["Say hello", expected, "Once more", again], (shown, again)
    titles = page.eval("[...document.querySelectorAll('#chats .open')].map(b => b.textContent)")
    assert titles == ["Say hello"], titles

    on_screen = page.eval(MESSAGES)
    page.call("Page.reload")
    page.wait("document.readyState === 'complete' && document.querySelectorAll('.message').length === 4", "the restored chat")
    assert page.eval(MESSAGES) == on_screen, "the conversation survives a reload"

    # Stop: a long answer, stopped once it has begun, keeps what came and frees the slot.
    page.eval("document.getElementById('new').click()")
    settings(page, 0.8, -1)
    page.eval("""(() => {
        const input = document.getElementById('input');
        input.value = 'Write a very long story.';
        document.getElementById('ask').requestSubmit();
    })()""")
    page.wait("(document.querySelector('.message.assistant .content') || {}).textContent", "the answer to begin")
    page.eval("document.getElementById('stop').click()")
    page.wait(SETTLED, "the stop")
    kept = page.eval("document.querySelector('.message.assistant .content').textContent")
    assert kept, "what came before Stop is kept"
    deadline = time.time() + 10
    while any(s["is_processing"] for s in json.load(urllib.request.urlopen(f"{base_url}/slots"))):
        assert time.time() < deadline, "the server stopped generating after Stop"
        time.sleep(0.1)

    # Answers are Markdown, built as elements: what is not Markdown stays text, and a link
    # goes only to a web address.
    rendered = lambda text: page.eval(f"(() => {{ const d = document.createElement('div'); d.append(markdown({json.dumps(text)})); return d.innerHTML; }})()")
    cases = [
        ("Some **bold**, *slanted* and `code`.", "<p>Some <strong>bold</strong>, <em>slanted</em> and <code>code</code>.</p>"),
        ("# Title\n\n- one\n- two\n\n1. first", "<h1>Title</h1><ul><li>one</li><li>two</li></ul><ol><li>first</li></ol>"),
        ("```py\nprint('<b>')\n```\nafter", "<pre><code>print('&lt;b&gt;')</code></pre><p>after</p>"),
        ("```\nstill streaming", "<pre><code>still streaming</code></pre>"),
        ("[site](https://example.com) [bad](javascript:alert(1))",
         '<p><a target="_blank" rel="noopener noreferrer" href="https://example.com">site</a> [bad](javascript:alert(1))</p>'),
        ("<img src=x onerror=alert(1)> snake_case_name", "<p>&lt;img src=x onerror=alert(1)&gt; snake_case_name</p>"),
    ]
    for text, html in cases:
        got = rendered(text)
        # Attribute order is the browser's; compare links' attributes as a set.
        assert got == html or (sorted(re.findall(r'\w+="[^"]*"', got)) == sorted(re.findall(r'\w+="[^"]*"', html))
                               and re.sub(r"<a [^>]*>", "<a>", got) == re.sub(r"<a [^>]*>", "<a>", html)), (text, got)

    # Text is text: markup typed by the user stays as typed.
    settings(page, 0, 4)
    markup = "<img src=x onerror=\"document.title='owned'\"><b>bold</b>"
    say(page, markup)
    user = page.eval("[...document.querySelectorAll('.message.user .content')].pop().innerHTML")
    assert user == markup.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), user
    assert page.eval("document.title") != "owned" and page.eval("document.querySelectorAll('#messages img, #messages b').length") == 0

    assert page.eval("document.querySelectorAll('#chats li').length") == 2
    page.eval("document.querySelector('#chats li .delete').click()")
    assert page.eval("document.querySelectorAll('#chats li').length") == 1
    assert len(json.loads(page.eval("localStorage.getItem('gguf-serve.chats')"))) == 1
    print("chat: ok")


def key(page, base_url):
    page.open(f"{base_url}/")
    settings(page, 0, 8)
    shown = say(page, "Say hello")
    assert shown[-1] == ["assistant", "Error: Invalid API Key"], shown
    assert page.eval("document.querySelector('.message.error .content').textContent") == "Error: Invalid API Key"
    settings(page, 0, 8, key="sk-page")
    page.eval("document.getElementById('new').click()")
    hello = [{"role": "user", "content": "Say hello"}]
    api_answer(base_url, hello, 8, key="sk-page")
    expected = api_answer(base_url, hello, 8, key="sk-page")
    shown = say(page, "Say hello")
    assert shown == [["user", "Say hello"], ["assistant", expected]], (shown, expected)
    name = page.eval("document.getElementById('model').textContent")
    assert name == "gemma-3-270m-q4_k_m.gguf", "with the key the page reads /props"
    print("key: ok")


def router(page, base_url):
    """A server of several models: the page offers them, remembers the choice, and asks the
    one chosen."""
    page.open(f"{base_url}/")
    options = page.wait("!document.getElementById('models').hidden && [...document.getElementById('models').options].map(o => o.value)", "the models")
    assert options == ["all-minilm-l6-v2-f16", "gemma-3-270m-q4_k_m"], options
    page.eval("""(() => {
        const select = document.getElementById('models');
        select.value = 'gemma-3-270m-q4_k_m';
        select.dispatchEvent(new Event('change'));
    })()""")
    settings(page, 0, 16)
    hello = [{"role": "user", "content": "Say hello"}]
    model = "gemma-3-270m-q4_k_m"
    api_answer(base_url, hello, 16, model=model)
    expected = api_answer(base_url, hello, 16, model=model)
    shown = say(page, "Say hello")
    assert shown == [["user", "Say hello"], ["assistant", expected]], (shown, expected)
    page.eval("window.beforeReload = true")
    page.call("Page.reload")
    chosen = page.wait("!window.beforeReload && document.getElementById('models')?.hidden === false && document.getElementById('models').value", "the models again")
    assert chosen == model, chosen
    print("router: ok")


if __name__ == "__main__":
    mode, base_url = sys.argv[1], sys.argv[2]
    page = Browser()
    try:
        {"chat": chat, "key": key, "router": router}[mode](page, base_url)
    finally:
        page.close()

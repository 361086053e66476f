"""The chat page: plain HTML and a small script (no libraries, no CDN). It holds no data and needs no key; the
user types the API key into the page, which keeps it in the tab's sessionStorage and sends it as ``X-API-Key``
with every question to ``POST /v1/chat``. Answers are inserted as text, never as HTML."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tuneforge assistant</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:center}
header h1{font-size:18px;margin:0}main{max-width:760px;margin:16px auto;padding:0 12px}
#log{background:#fff;border-radius:6px;box-shadow:0 1px 2px #0002;padding:12px;min-height:300px}
.me{text-align:right;margin:8px 0}.me span{background:#1d2330;color:#fff;border-radius:12px;padding:6px 10px;
display:inline-block}.bot{margin:8px 0}.bot span{background:#e8ecf3;border-radius:12px;padding:6px 10px;
display:inline-block;white-space:pre-wrap}.why{font-size:12px;color:#667;margin:2px 0 0 6px}
.route-human span{background:#fde8c8}.route-generated span{background:#e3f4e6}
form{display:flex;gap:8px;margin-top:10px}#question{flex:1;padding:8px;font:inherit}#error{color:#ffb4b4}
</style></head><body>
<header><h1>tuneforge assistant</h1>
<label>API key <input id="key" type="password" size="28" autocomplete="off"></label><span id="error"></span></header>
<main><div id="log" aria-live="polite"></div>
<form id="ask"><input id="question" placeholder="Ask a question" autocomplete="off" maxlength="1000">
<button>Send</button></form></main>
<script>
const keyInput = document.getElementById("key");
keyInput.value = sessionStorage.getItem("tuneforge-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("tuneforge-key", keyInput.value));
function say(who, text, extra) {
  const div = document.createElement("div"); div.className = who + (extra ? " route-" + extra.route : "");
  const span = document.createElement("span"); span.textContent = text; div.append(span);
  if (extra) { const why = document.createElement("div"); why.className = "why";
    const near = extra.route === "kb" ? "matched" : "closest";  // a rejected match is not "matched"
    why.textContent = extra.route + ": " + extra.reason + (extra.matched_question ? " (" + near + ": \\u201c" +
      extra.matched_question + "\\u201d)" : ""); div.append(why); }
  const log = document.getElementById("log"); log.append(div); log.scrollTop = log.scrollHeight;
}
document.getElementById("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = document.getElementById("question"), question = box.value.trim();
  if (!question) return;
  box.value = ""; say("me", question); document.getElementById("error").textContent = "";
  try {
    const r = await fetch("v1/chat", {method: "POST", headers: {"Content-Type": "application/json",
      "X-API-Key": keyInput.value}, body: JSON.stringify({question})});
    const data = await r.json();
    if (!r.ok) throw new Error(data.error ? data.error.message : r.statusText);
    say("bot", data.answer, data);
  } catch (e) { document.getElementById("error").textContent = e.message; }
});
</script></body></html>
"""

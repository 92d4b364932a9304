// The lab page's one script: a fault button sends its JSON POST to the lab control API
// (same origin, Content-Type: application/json, as the guard requires), then the page
// reloads; with "refresh" ticked the page reloads every 3 s while nobody is typing.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  document.body.dataset.script = "ready";
  const result = document.getElementById("result");
  for (const b of document.querySelectorAll("button.fault")) {
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        const r = await fetch(b.dataset.post, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: "{}",
        });
        const v = await r.json();
        if (!r.ok) {
          result.textContent = b.dataset.post + ": " + (v.error || r.status);
          b.disabled = false;
          return;
        }
        location.reload();
      } catch (e) {
        result.textContent = b.dataset.post + ": " + e;
        b.disabled = false;
      }
    });
  }
  const auto = document.getElementById("autorefresh");
  const search = document.getElementById("search");
  setInterval(() => {
    if (auto.checked && document.activeElement !== search) {
      location.reload();
    }
  }, 3000);
});

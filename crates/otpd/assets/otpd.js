// otpd's pages work without this file; it only adds copy and print buttons and a countdown.
// Served from 'self' (the pages' Content-Security-Policy allows no inline script).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // After a refused form, the first field in error has the focus (its message is beside it).
  const invalid = document.querySelector('[aria-invalid="true"]');
  if (invalid) invalid.focus();
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    if (!navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      // Codes are copied one per line; a secret without the spaces that group it.
      const items = source.querySelectorAll("li");
      const text = items.length
        ? Array.from(items, (li) => li.textContent.trim()).join("\n")
        : source.textContent.replace(/\s+/g, "");
      try {
        await navigator.clipboard.writeText(text);
        const label = button.textContent;
        button.textContent = button.dataset.copied || label;
        setTimeout(() => { button.textContent = label; }, 2000);
      } catch (_) { /* the text stays selectable */ }
    });
  }
  // The recovery codes as a text file, made here from the list on the page: a blob: address
  // leaves nothing of the codes in the browser's download history.
  for (const button of document.querySelectorAll("button.download[data-list]")) {
    button.hidden = false;
    button.addEventListener("click", () => {
      const list = document.getElementById(button.dataset.list);
      if (!list) return;
      const lines = Array.from(list.querySelectorAll("li"), (li) => li.textContent.trim());
      const text = `${button.dataset.heading}\n\n${lines.join("\n")}\n`;
      const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
      const link = document.createElement("a");
      link.href = url;
      link.download = button.dataset.filename;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    });
  }
  for (const button of document.querySelectorAll("button.print")) {
    button.hidden = false;
    button.addEventListener("click", () => window.print());
  }
  // Pasted codes may carry spaces ("123 456"); the server ignores them too.
  for (const input of document.querySelectorAll('input[autocomplete="one-time-code"]')) {
    input.addEventListener("paste", (event) => {
      const text = (event.clipboardData || window.clipboardData)?.getData("text");
      if (text && /^[\d\s]+$/.test(text)) {
        event.preventDefault();
        input.value = text.replace(/\s+/g, "");
      }
    });
  }
  // The server says how many seconds are left, so the browser's clock does not matter.
  for (const time of document.querySelectorAll("time[data-seconds-left]")) {
    const end = Date.now() + Number(time.dataset.secondsLeft) * 1000;
    const label = time.textContent;
    const tick = () => {
      const left = Math.max(0, Math.round((end - Date.now()) / 1000));
      time.textContent = `${label} (${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")})`;
      if (left > 0) setTimeout(tick, 1000);
    };
    tick();
  }
});

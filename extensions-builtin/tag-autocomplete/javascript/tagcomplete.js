// Tag autocomplete for the txt2img/img2img prompt boxes (built-in extension "tag-autocomplete").
// Listens on the whole document (Gradio renders the textareas after this script runs), asks the extension's
// route for the word under the cursor and shows a list under the box.
// Keys while the list is open: ArrowDown/ArrowUp move, Enter or Tab insert, Escape closes.
(() => {
  const ROUTE = "__TAGCOMPLETE_ROUTE__";
  const BOX_IDS = ["txt2img_prompt", "txt2img_neg_prompt", "img2img_prompt", "img2img_neg_prompt"];
  const SEPARATORS = ",\n()[]{}|";
  const state = { box: null, items: [], active: 0, start: 0, end: 0, seq: 0, timer: null, inserting: false };

  function promptBox(target) {
    if (!(target instanceof HTMLTextAreaElement)) return null;
    const holder = target.closest(BOX_IDS.map((id) => "#" + id).join(","));
    return holder ? target : null;
  }

  // The word being typed: from an unclosed "<" (for <lora:...), else from the last separator, to the cursor.
  function currentWord(box) {
    const end = box.selectionStart;
    const before = box.value.slice(0, end);
    const open = before.lastIndexOf("<");
    if (open >= 0 && before.indexOf(">", open) < 0) return { start: open, end, word: before.slice(open) };
    let start = 0;
    for (let i = before.length - 1; i >= 0; i--) {
      if (SEPARATORS.includes(before[i])) { start = i + 1; break; }
    }
    while (start < end && before[start] === " ") start++;
    return { start, end, word: before.slice(start) };
  }

  function popup() {
    let list = document.getElementById("tagcomplete_popup");
    if (!list) {
      list = document.createElement("ul");
      list.id = "tagcomplete_popup";
      list.setAttribute("role", "listbox");
      list.addEventListener("mousedown", (event) => {
        const item = event.target.closest("li");
        if (!item) return;
        event.preventDefault();
        insert(Number(item.dataset.index));
      });
      document.body.appendChild(list);
    }
    return list;
  }

  function hide() {
    state.items = [];
    const list = document.getElementById("tagcomplete_popup");
    if (list) list.style.display = "none";
  }

  function render() {
    const list = popup();
    if (!state.items.length || !state.box) { hide(); return; }
    list.replaceChildren(...state.items.map((item, index) => {
      const li = document.createElement("li");
      li.dataset.index = String(index);
      li.className = "tagcomplete-item tagcomplete-" + item.kind + (index === state.active ? " active" : "");
      li.setAttribute("role", "option");
      const label = document.createElement("span");
      label.className = "tagcomplete-label";
      label.textContent = item.alias ? item.alias + " \u2192 " + item.label : item.label;
      const meta = document.createElement("span");
      meta.className = "tagcomplete-meta";
      meta.textContent = item.count ? item.kind + " " + item.count : item.kind;
      li.append(label, meta);
      return li;
    }));
    const rect = state.box.getBoundingClientRect();
    list.style.left = (window.scrollX + rect.left) + "px";
    list.style.top = (window.scrollY + rect.bottom + 2) + "px";
    list.style.minWidth = Math.min(rect.width, 420) + "px";
    list.style.display = "block";
    const active = list.children[state.active];
    if (active && active.scrollIntoView) active.scrollIntoView({ block: "nearest" });
  }

  async function lookup(box) {
    const { start, end, word } = currentWord(box);
    if (!word.trim() || (word.trim().length < 2 && !word.startsWith("<"))) { hide(); return; }
    const seq = ++state.seq;
    try {
      const response = await fetch(ROUTE + "?q=" + encodeURIComponent(word), { credentials: "same-origin" });
      if (!response.ok || seq !== state.seq) return;
      const data = await response.json();
      if (seq !== state.seq || document.activeElement !== box) return;
      Object.assign(state, { box, items: data.suggestions || [], active: 0, start, end });
      render();
    } catch (error) {
      hide();
    }
  }

  function insert(index) {
    const item = state.items[index];
    const box = state.box;
    if (!item || !box) return;
    const after = box.value.slice(state.end);
    const tail = item.kind === "lora" ? "" : (after.trimStart().startsWith(",") ? "" : ", ");
    const text = item.value + tail;
    box.value = box.value.slice(0, state.start) + text + after;
    const caret = state.start + text.length;
    box.setSelectionRange(caret, caret);
    hide();
    state.inserting = true;
    box.dispatchEvent(new Event("input", { bubbles: true })); // Gradio reads the value from this event
    state.inserting = false;
    box.focus();
  }

  document.addEventListener("input", (event) => {
    const box = promptBox(event.target);
    if (!box || state.inserting) return;
    clearTimeout(state.timer);
    state.timer = setTimeout(() => lookup(box), 120);
  }, true);

  document.addEventListener("keydown", (event) => {
    if (!state.items.length || !promptBox(event.target)) return;
    const moves = { ArrowDown: 1, ArrowUp: -1 };
    if (event.key in moves) {
      state.active = (state.active + moves[event.key] + state.items.length) % state.items.length;
      render();
    } else if (event.key === "Enter" || event.key === "Tab") {
      insert(state.active);
    } else if (event.key === "Escape") {
      hide();
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  }, true);

  document.addEventListener("focusout", (event) => {
    if (promptBox(event.target)) setTimeout(() => { if (document.activeElement !== state.box) hide(); }, 150);
  }, true);
})();

// Sorting and filtering for the main table. Plain JS, no libraries. The table is complete
// without it: this only reorders and hides rows that the server-rendered page already has.
// Its groups (the ranking, partial runs, controls) are separate tbodies: sorting reorders the
// rows within each group, never moves a row into another.
"use strict";

(function () {
  const table = document.getElementById("leaderboard");
  const controls = document.getElementById("controls");
  if (!table || !controls) {
    return;
  }
  const groups = Array.from(table.tBodies, (body) => ({
    body: body,
    head: body.querySelector("tr.group-head"),
    rows: Array.from(body.rows).filter((row) => row.dataset.track !== undefined),
  }));
  const rows = groups.flatMap((group) => group.rows);
  const filter = document.getElementById("filter");
  const side = document.getElementById("side");
  const shown = document.getElementById("shown");
  const tracks = Array.from(controls.querySelectorAll("input[name=track]"));

  // A cell's sort key: its data-value, as a number for numeric columns; blanks sort last.
  function key(row, col, numeric) {
    const raw = row.cells[col].dataset.value;
    if (raw === undefined || raw === "") {
      return null;
    }
    return numeric ? Number(raw) : raw.toLowerCase();
  }

  function sortBy(header) {
    const col = Number(header.dataset.col);
    const numeric = header.dataset.sort === "num";
    // Numbers start high-to-low (best first), text starts A-Z; a second click flips.
    const first = numeric ? "descending" : "ascending";
    const current = header.getAttribute("aria-sort");
    const order = current === first ? (first === "ascending" ? "descending" : "ascending") : first;
    const sign = order === "ascending" ? 1 : -1;
    table.querySelectorAll("th[aria-sort]").forEach((th) => th.removeAttribute("aria-sort"));
    header.setAttribute("aria-sort", order);
    groups.forEach((group) => {
      const sorted = group.rows.slice().sort((a, b) => {
        const x = key(a, col, numeric);
        const y = key(b, col, numeric);
        if (x === null || y === null) {
          return (x === null) - (y === null);
        }
        return x < y ? -sign : x > y ? sign : 0;
      });
      sorted.forEach((row) => group.body.appendChild(row));
    });
  }

  table.querySelectorAll("th[data-sort]").forEach((header) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = header.textContent.trim();
    button.title = "sort by " + button.textContent;
    header.replaceChildren(button);
    button.addEventListener("click", () => sortBy(header));
  });

  function applyFilters() {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    const allowed = new Set(tracks.filter((box) => box.checked).map((box) => box.value));
    let visible = 0;
    rows.forEach((row) => {
      const text = row.textContent.toLowerCase();
      const show = allowed.has(row.dataset.track)
        && (side.value === "" || row.dataset.side === side.value)
        && words.every((word) => text.includes(word));
      row.hidden = !show;
      visible += show ? 1 : 0;
    });
    groups.forEach((group) => {
      if (group.head) {
        group.head.hidden = group.rows.every((row) => row.hidden);
      }
    });
    shown.textContent = visible + " of " + rows.length + " shown";
  }

  controls.addEventListener("input", applyFilters);
  controls.addEventListener("change", applyFilters);
  controls.addEventListener("submit", (event) => event.preventDefault());
  controls.hidden = false;
  applyFilters();
})();

// atlas: search, grid filters, random class, image / transparency / masked toggles, keyboard shortcuts,
// copy buttons and the compare page. Plain JavaScript written for this site, no libraries, no network:
// the class index is a local script (search-index.js), so everything works from file:// too.
(function () {
  "use strict";
  var doc = document.documentElement;
  doc.classList.add("js");
  var ROOT = doc.getAttribute("data-root") || "";
  // where the assets tree is (the same folder as the pages, or another host: [site] assets_url)
  var ASSETS = doc.hasAttribute("data-assets") ? doc.getAttribute("data-assets") : ROOT;

  // ------------------------------------------------------------------ helpers
  function $(sel, el) { return (el || document).querySelector(sel); }
  function $$(sel, el) { return Array.prototype.slice.call((el || document).querySelectorAll(sel)); }
  function pad4(n) { return ("000" + n).slice(-4); }
  function fill(pattern, v) {
    return pattern.replace("{model}", v.model || "").replace("{method}", v.method || "")
      .replace("{id}", pad4(v.id)).replace("{seed}", String(v.seed)).replace("{version}", v.version || "");
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;  // textContent: labels are never parsed as HTML
    return e;
  }
  function typing(ev) {
    var t = ev.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }

  // Queries: "285" or "#285" -> that id; "n02124075" -> that WordNet id; words -> every word in the
  // name or a synonym. Lower rank = better match.
  function parseQuery(q) {
    q = (q || "").trim().toLowerCase().replace(/^#/, "");
    if (!q) return null;
    if (/^\d+$/.test(q)) return { id: parseInt(q, 10) };
    if (/^n\d{8}$/.test(q)) return { wnid: q };
    return { words: q.split(/\s+/) };
  }
  function rank(query, id, wnid, name, synonyms) {
    if (!query) return 0;
    if (query.id !== undefined) return id === query.id ? 0 : -1;
    if (query.wnid !== undefined) return wnid === query.wnid ? 0 : -1;
    var hay = name + "; " + synonyms;
    for (var i = 0; i < query.words.length; i++) if (hay.indexOf(query.words[i]) === -1) return -1;
    var q = query.words.join(" ");
    if (name === q) return 1;
    if (name.indexOf(q) === 0) return 2;
    if ((" " + name).indexOf(" " + query.words[0]) !== -1) return 3;
    return name.indexOf(query.words[0]) !== -1 ? 4 : 5;
  }

  // ------------------------------------------------------------------ the class index (lazy)
  var waiting = null;
  function withIndex(cb) {
    if (window.ATLAS_INDEX) return cb(window.ATLAS_INDEX);
    if (waiting) return waiting.push(cb);
    waiting = [cb];
    var holder = $("[data-index]");
    var s = el("script", { src: holder ? holder.getAttribute("data-index") : ROOT + "search-index.js" });
    s.onload = function () { var w = waiting; waiting = null; w.forEach(function (f) { f(window.ATLAS_INDEX); }); };
    document.head.appendChild(s);
  }

  // Image URLs name each figure's version (its job key): figure-versions.js, loaded when first needed.
  // versionOf(versions, index, model, method, seed, id) -> the key, or "" where no image is built.
  var vwaiting = null;
  function withVersions(cb) {
    if (window.ATLAS_VERSIONS) return cb(window.ATLAS_VERSIONS);
    if (vwaiting) return vwaiting.push(cb);
    vwaiting = [cb];
    var s = el("script", { src: ROOT + "figure-versions.js" });
    s.onload = function () { var w = vwaiting; vwaiting = null; w.forEach(function (f) { f(window.ATLAS_VERSIONS); }); };
    document.head.appendChild(s);
  }
  var classRow = null;
  function versionOf(versions, idx, model, method, seed, id) {
    if (!classRow) { classRow = {}; idx.classes.forEach(function (c, i) { classRow[c[0]] = i; }); }
    var keys = versions[model + "|" + method + "|" + seed];
    return (keys && keys[classRow[id]]) || "";
  }

  // ------------------------------------------------------------------ header search (every page)
  // The search box is made here, not in each page's HTML (one page per figure: every byte counts, and
  // without this script the box could not search anyway).
  var header = $("header.top");
  if (header && !$("[data-quick]")) {
    var form = el("form", { "class": "quick", role: "search", action: ROOT + "index.html", "data-quick": "" });
    form.appendChild(el("label", { "for": "quick-q", "class": "sr" }, "Search classes by name, synonym or id"));
    form.appendChild(el("input", { id: "quick-q", name: "q", type: "search", placeholder: "Search classes (/)",
      autocomplete: "off", role: "combobox", "aria-expanded": "false", "aria-controls": "quick-list",
      "aria-autocomplete": "list", "data-index": ROOT + "search-index.js" }));
    form.appendChild(el("ul", { id: "quick-list", "class": "quick-list", role: "listbox",
      "aria-label": "Matching classes", hidden: "" }));
    header.insertBefore(form, $("nav", header));
  }
  var quick = $("[data-quick]");
  if (quick) {
    var qin = $("input", quick), list = $(".quick-list", quick), active = -1;
    var close = function () { list.hidden = true; qin.setAttribute("aria-expanded", "false"); active = -1; };
    var mark = function (i) {
      var opts = $$("[role=option]", list);
      if (!opts.length) return;
      active = (i + opts.length) % opts.length;
      opts.forEach(function (o, k) { o.setAttribute("aria-selected", k === active ? "true" : "false"); });
      qin.setAttribute("aria-activedescendant", opts[active].id);
      opts[active].scrollIntoView({ block: "nearest" });
    };
    var show = function () {
      var query = parseQuery(qin.value);
      if (!query) return close();
      withIndex(function (idx) {
        var hits = [];
        idx.classes.forEach(function (c) {
          var r = rank(query, c[0], c[3], c[1].toLowerCase(), c[2].toLowerCase());
          if (r >= 0) hits.push([r, c[0], c]);
        });
        (idx.pages || []).forEach(function (p) {
          var r = rank(query, -1, "", String(p.label).toLowerCase(), String(p.kind || "").toLowerCase());
          if (r >= 0) hits.push([r + 0.5, 1e9, null, p]);
        });
        hits.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
        list.textContent = "";
        var model = idx.models[0];
        hits.slice(0, 12).forEach(function (h, k) {
          var li = el("li", { role: "option", id: "quick-opt-" + k, "aria-selected": "false" });
          var a;
          if (h[2]) {
            var c = h[2];
            a = el("a", { href: ROOT + fill(idx.patterns["class"], { model: c[4] || model.slug, id: c[0] }) }, c[1] + " ");
            a.appendChild(el("small", {}, "#" + c[0] + (c[2] ? " · " + c[2] : "")));
          } else {
            a = el("a", { href: ROOT + h[3].page }, h[3].label + " ");
            a.appendChild(el("small", {}, h[3].kind || ""));
          }
          li.appendChild(a);
          list.appendChild(li);
        });
        if (!hits.length) list.appendChild(el("li", { "class": "none" }, "No class matches."));
        list.hidden = false;
        qin.setAttribute("aria-expanded", "true");
        active = -1;
      });
    };
    qin.addEventListener("input", show);
    qin.addEventListener("focus", function () { withIndex(function () {}); if (qin.value) show(); });
    qin.addEventListener("keydown", function (ev) {
      if (ev.key === "ArrowDown") { ev.preventDefault(); if (list.hidden) show(); else mark(active + 1); }
      else if (ev.key === "ArrowUp") { ev.preventDefault(); mark(active - 1); }
      else if (ev.key === "Escape") { close(); }
      else if (ev.key === "Enter") {
        var opts = $$("[role=option] a", list);
        var pick = opts[active >= 0 ? active : 0];
        if (pick && !list.hidden) { ev.preventDefault(); window.location.href = pick.href; }
      }
    });
    document.addEventListener("click", function (ev) { if (!quick.contains(ev.target)) close(); });
  }

  // ------------------------------------------------------------------ layer pages: filter channels by number or label
  $$("[data-unit-filter]").forEach(function (input) {
    var grid = document.getElementById(input.getAttribute("data-unit-filter"));
    if (!grid) return;
    var items = $$("li[data-q]", grid), count = $("[data-unit-count]"), empty = $("[data-unit-empty]");
    input.addEventListener("input", function () {
      var words = input.value.trim().toLowerCase().split(/\s+/).filter(Boolean), shown = 0;
      items.forEach(function (li) {
        var q = li.getAttribute("data-q"), ok = true;
        for (var i = 0; i < words.length && ok; i++) {
          ok = /^\d+$/.test(words[i]) ? q.split(" ")[0] === words[i] : q.indexOf(words[i]) !== -1;
        }
        li.hidden = !ok;
        if (ok) shown++;
      });
      if (count) count.textContent = shown + " of " + items.length + " channels";
      if (empty) empty.hidden = shown > 0;
    });
  });

  // ------------------------------------------------------------------ class grids: filter, method, random
  $$("[data-tools]").forEach(function (tools) {
    var grid = document.getElementById(tools.getAttribute("data-tools"));
    if (!grid) return;
    var input = $("[data-search-input]", tools), count = $("[data-count]", tools);
    var pattern = grid.getAttribute("data-thumb"), model = grid.getAttribute("data-model");
    var seed = grid.getAttribute("data-seed"), versions = null, index = null;
    var empty = grid.parentNode.querySelector("[data-empty]");
    var cards = $$("[data-search]", grid).map(function (c) {
      var img = $("img", c);
      if (img) img.setAttribute("data-orig", img.getAttribute("src"));
      var syn = c.getAttribute("data-search");
      return { el: c, img: img, id: parseInt(c.getAttribute("data-id"), 10), wnid: c.getAttribute("data-wnid"),
               name: syn.split(";")[0].trim(), syn: syn, missing: (c.getAttribute("data-missing") || "").split(" ") };
    });
    var method = function () { var r = $("[data-method-filter] input:checked", tools); return r ? r.value : ""; };
    var apply = function () {
      var query = parseQuery(input.value), m = method(), shown = 0;
      if (m && !versions) {  // the other methods' thumbnails need their versions: load them, then apply
        return withIndex(function (idx) { withVersions(function (v) { index = idx; versions = v; apply(); }); });
      }
      cards.forEach(function (c) {
        var hit = rank(query, c.id, c.wnid, c.name, c.syn) >= 0 && (!m || c.missing.indexOf(m) === -1);
        c.el.hidden = !hit;
        if (hit) shown++;
        if (c.img) {
          var want = m ? thumbFor(m, c.id) : c.img.getAttribute("data-orig");
          if (c.img.getAttribute("src") !== want) c.img.setAttribute("src", want);
        }
      });
      if (empty) empty.hidden = shown !== 0;
      if (count) count.textContent = shown + " of " + cards.length + " classes";
    };
    function thumbFor(m, id) {
      var version = versionOf(versions, index, model, m, seed, id);
      return ASSETS + fill(pattern, { model: model, method: m, id: id, seed: seed, version: version });
    }
    input.addEventListener("input", apply);
    $$("[data-method-filter] input", tools).forEach(function (r) { r.addEventListener("change", apply); });
    var random = $("[data-random]", tools);
    if (random) {
      random.hidden = false;
      random.addEventListener("click", function () {
        var pool = cards.filter(function (c) { return !c.el.hidden; });
        if (!pool.length) pool = cards;
        var pick = pool[Math.floor(Math.random() * pool.length)];
        if (pick) window.location.href = $("a", pick.el).href;
      });
    }
    var q = new URLSearchParams(window.location.search).get("q");
    if (q) input.value = q;
    apply();
  });

  // ------------------------------------------------------------------ image / transparency / masked
  // The masked view is no file: it is drawn from the image and its transparency map (style.css blends the
  // inverted map over the image: a*image + (1-a)*page; images from another origin blend as well).
  // The transparency map is loaded when first shown (its address is the image's data-alpha).
  function alphaView(fig) {
    var img = $('[data-view="image"]', fig);
    var alpha = el("img", { "class": "view", "data-view": "alpha", src: img.getAttribute("data-alpha"), decoding: "async",
      alt: "Transparency map (accumulated gradients) of the " + img.alt.charAt(0).toLowerCase() + img.alt.slice(1) });
    ["width", "height"].forEach(function (a) { if (img.hasAttribute(a)) alpha.setAttribute(a, img.getAttribute(a)); });
    alpha.hidden = true;
    img.parentNode.insertBefore(alpha, img.nextSibling);
    return alpha;
  }
  function maskedView(fig) {
    var img = $('[data-view="image"]', fig), alpha = $('[data-view="alpha"]', fig) || alphaView(fig);
    if (!img || !alpha) return null;
    var span = el("span", { "class": "view masked", "data-view": "masked" });
    var top = img.cloneNode(false), mask = alpha.cloneNode(false);
    ["data-view", "data-alpha", "class", "hidden"].forEach(function (a) { top.removeAttribute(a); mask.removeAttribute(a); });
    top.alt = img.alt + ", masked by its transparency map";
    mask.className = "mask";
    mask.alt = "its transparency map, as the mask";
    span.appendChild(top);
    span.appendChild(mask);
    img.parentNode.appendChild(span);
    return span;
  }
  function showView(fig, want) {
    if (want === "alpha" && !$('[data-view="alpha"]', fig)) alphaView(fig);
    if (want === "masked" && !$('[data-view="masked"]', fig)) maskedView(fig);
    $$("[data-view]", fig).forEach(function (img) { img.hidden = img.getAttribute("data-view") !== want; });
    $$("[data-show]", fig).forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-show") === want ? "true" : "false");
    });
  }
  $$("[data-fig]").forEach(function (fig) {
    var views = $(".views", fig);
    if (views && $("[data-alpha]", fig) && !$("[data-show]", fig)) {  // the toggles, made here
      var group = el("div", { "class": "toggles", role: "group", "aria-label": "View of this image" });
      [["image", "image"], ["alpha", "transparency"], ["masked", "masked"]].forEach(function (v, i) {
        group.appendChild(el("button", { type: "button", "data-show": v[0], "aria-pressed": i ? "false" : "true" }, v[1]));
      });
      views.parentNode.insertBefore(group, views.nextSibling);
    }
    $$("[data-show]", fig).forEach(function (btn) {
      btn.addEventListener("click", function () { showView(fig, btn.getAttribute("data-show")); });
    });
  });
  var all = $("[data-view-all]");
  function showAll(want) {
    $$("[data-fig]").forEach(function (fig) { showView(fig, want); });
    if (all) $$("[data-show-all]", all).forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-show-all") === want ? "true" : "false");
    });
  }
  if (all) {
    all.hidden = false;
    $$("[data-show-all]", all).forEach(function (b) {
      b.addEventListener("click", function () { showAll(b.getAttribute("data-show-all")); });
    });
  }

  // ------------------------------------------------------------------ keyboard shortcuts
  document.addEventListener("keydown", function (ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey || typing(ev)) return;
    var go = function (sel) { var a = $(sel); if (a) { ev.preventDefault(); window.location.href = a.href; } };
    if (ev.key === "/" && quick) { ev.preventDefault(); $("input", quick).focus(); }
    else if (ev.key === "ArrowLeft") go("[data-key-prev]");
    else if (ev.key === "ArrowRight") go("[data-key-next]");
    else if (all && (ev.key === "1" || ev.key === "2" || ev.key === "3")) showAll(["image", "alpha", "masked"][+ev.key - 1]);
    else if (ev.key === "r") { var r = $("[data-random]"); if (r) r.click(); }
  });

  // ------------------------------------------------------------------ permalinks and copy buttons
  if (/^https?:$/.test(window.location.protocol)) {
    $$("[data-permalink]").forEach(function (a) {
      var abs = new URL(a.getAttribute("href"), window.location.href).href;
      var code = $("code", a);
      if (code) code.textContent = abs;
      $$("[data-copy-src]").forEach(function (pre) {
        pre.textContent = pre.textContent.replace(/\\url\{[^}]*\}/, "\\url{" + abs + "}");
      });
    });
    $$("[data-newest] code").forEach(function (code) {
      code.textContent = new URL(code.parentNode.getAttribute("href"), window.location.href).href;
    });
  }
  $$("[data-copy]").forEach(function (btn) {
    var pre = btn.parentNode.querySelector("[data-copy-src]");
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var text = pre.textContent, label = btn.textContent;
      var done = function () { btn.textContent = "Copied"; setTimeout(function () { btn.textContent = label; }, 1500); };
      var fallback = function () {
        var r = document.createRange(); r.selectNodeContents(pre);
        var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
        try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
      };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
      else fallback();
    });
  });

  // shared with page scripts (compare.js)
  window.atlas = { ROOT: ROOT, ASSETS: ASSETS, $: $, $$: $$, el: el, fill: fill, parseQuery: parseQuery, rank: rank,
                   withIndex: withIndex, withVersions: withVersions, versionOf: versionOf };
})();

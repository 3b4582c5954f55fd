// rmmbridge's own small script. Every page works without it; it only adds conveniences:
// local times, live progress of running syncs, confirmations, copy buttons, countdowns, tenant-picker filters.
"use strict";
(function () {
  document.documentElement.classList.add("js");

  function localTimes(root) {
    root.querySelectorAll("time[data-utc]").forEach(function (el) {
      var m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) UTC$/.exec(el.textContent.trim());
      if (!m) return;
      var d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
      el.setAttribute("datetime", d.toISOString());
      el.title = el.textContent;
      el.textContent = d.toLocaleString();
    });
  }

  // A region with data-poll="ms" is replaced by the same region of a fresh copy of the page
  // until the fresh copy no longer asks to be polled (the sync finished).
  function poll(region) {
    var ms = parseInt(region.getAttribute("data-poll"), 10) || 2000;
    setTimeout(function () {
      fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById(region.id);
          if (!fresh) return;
          region.innerHTML = fresh.innerHTML;
          localTimes(region);
          if (fresh.hasAttribute("data-poll")) {
            poll(region);
          } else {
            region.removeAttribute("data-poll");
          }
        })
        .catch(function () { poll(region); });
    }, ms);
  }

  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      e.preventDefault();
      return;
    }
    var busy = form.getAttribute("data-busy");
    if (busy) {
      var b = form.querySelector("button[type=submit]");
      if (b) {
        // Disabled after the submit event so the button's own value is still sent.
        setTimeout(function () { b.disabled = true; b.textContent = busy; }, 0);
      }
    }
  });

  // A type-to-filter box in front of each tenant picker (the plain <select> works without it).
  function tenantFilter(select) {
    var box = document.createElement("input");
    box.type = "search";
    box.className = "picker-filter";
    box.placeholder = "Filter…";
    box.setAttribute("aria-label", "Filter tenants");
    box.addEventListener("input", function () {
      var needle = box.value.trim().toLowerCase();
      var first = null;
      Array.prototype.forEach.call(select.options, function (o) {
        if (!o.value) return;
        var show = !needle || o.textContent.toLowerCase().indexOf(needle) !== -1;
        o.hidden = !show;
        if (show && !first) first = o;
      });
      if (first && (!select.value || select.selectedOptions[0].hidden)) select.value = first.value;
      if (!first) select.value = "";
    });
    select.insertAdjacentElement("beforebegin", box);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("select.tenant-picker").forEach(tenantFilter);
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var left = parseInt(el.getAttribute("data-countdown"), 10);
      var t = setInterval(function () {
        left -= 1;
        el.textContent = String(Math.max(left, 0));
        if (left <= 0) {
          clearInterval(t);
          el.parentNode.textContent = "expired: show the code again for a new one";
        }
      }, 1000);
    });
    if (navigator.clipboard) {
      document.querySelectorAll("code.copy").forEach(function (code) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "small copy-button";
        b.textContent = "Copy";
        b.addEventListener("click", function () {
          navigator.clipboard.writeText(code.textContent.trim()).then(function () {
            b.textContent = "Copied";
            setTimeout(function () { b.textContent = "Copy"; }, 1500);
          });
        });
        code.insertAdjacentElement("afterend", b);
      });
    }
  });
})();

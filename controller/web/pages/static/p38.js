// Live refresh of the page's main part, when the page asks for it (data-refresh seconds) and
// nobody is typing in a form. Reading works without this script.
(function () {
  var main = document.getElementById("main");
  var every = main ? parseInt(main.getAttribute("data-refresh") || "0", 10) : 0;
  if (!every) { return; }
  setInterval(function () {
    if (document.hidden || (document.activeElement && document.activeElement.form)) { return; }
    fetch(window.location.href, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (!html) { return; }
      var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
      if (fresh) { main.replaceWith(fresh); main = fresh; }
    }).catch(function () {});
  }, every * 1000);
})();

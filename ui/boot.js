// Loads the page's stylesheet, icon and modules from where the files beside the page live:
// - `clawdock serve` (and the desktop app's API) serves the page at `/` and every file of
//   ui/ at `/ui/<file>` (and this one at `/boot.js` too, so the page can name it relatively);
// - the desktop window serves the ui/ folder itself as the site root
//   (tauri://localhost/index.html on macOS and Linux, http(s)://tauri.localhost/ on
//   Windows), so the files sit next to the page.
// So over http(s), unless the host is Tauri's, the files are under /ui/. The three
// references are written here, while the page is parsed (so the stylesheet still blocks
// the first paint), and not as static tags: the browser's preload scanner would fetch
// those at the wrong path first. Modules import each other relatively. No <base> either:
// it would make `href="#..."` point into /ui/. A file of its own, not an inline script:
// the Content-Security-Policy allows scripts from the page's origin only.
(function () {
  var served = /^https?:$/.test(location.protocol) && location.hostname !== 'tauri.localhost';
  var root = served ? '/ui/' : '';
  document.write(
    '<link rel="icon" type="image/svg+xml" href="' + root + 'icon.svg">' +
    '<link rel="stylesheet" href="' + root + 'style.css">' +
    '<script type="module" src="' + root + 'app.js"><\/script>');
})();

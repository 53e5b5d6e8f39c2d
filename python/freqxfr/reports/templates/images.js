window.addEventListener("load", function () {
  var broken = 0;
  var images = document.getElementsByTagName("img");
  for (var i = 0; i < images.length; i++) {
    if (!images[i].complete || images[i].naturalWidth === 0) { broken += 1; }
  }
  document.body.dataset.brokenImages = String(broken);
  document.body.dataset.loadedImages = String(images.length - broken);
  // For the layout check: a page wider than its window scrolls sideways (a table overflowed).
  document.body.dataset.pageWidth = String(document.documentElement.scrollWidth);
  document.body.dataset.viewportWidth = String(document.documentElement.clientWidth);
  document.title += broken ? " [" + broken + " broken images]" : " [rendered]";
});

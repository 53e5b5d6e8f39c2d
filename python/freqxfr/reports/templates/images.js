window.addEventListener("load", function () {
  var broken = 0;
  var images = document.getElementsByTagName("img");
  for (var i = 0; i < images.length; i++) {
    if (!images[i].complete || images[i].naturalWidth === 0) { broken += 1; }
  }
  document.body.dataset.brokenImages = String(broken);
  document.body.dataset.loadedImages = String(images.length - broken);
  document.title += broken ? " [" + broken + " broken images]" : " [rendered]";
});

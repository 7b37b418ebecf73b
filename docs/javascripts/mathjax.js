// MathJax 3 configuration for pymdownx.arithmatex (generic mode). The MathJax script itself is loaded by
// the browser from a CDN (see extra_javascript in mkdocs.yml); building the site needs no network.
// Equation labels such as (LA-22) are explicit \tag{...} in the pages, so automatic numbering stays off.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    tags: "none"
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex"
  }
};

// Material's instant navigation swaps page content without a reload: typeset each new page.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}

// MathJax 3 configuration for pymdownx.arithmatex (generic mode). The MathJax script itself is served by the
// site (javascripts/mathjax/, copied there by docs/hooks/site.py from the npm package), so pages read offline.
// Equation labels such as (LA-22) are explicit \tag{...} in the pages, so automatic numbering stays off.
window.MathJax = {
  tex: {
    // \( \) and \[ \] are what arithmatex writes on the pages; $ and $$ are the notebooks' own markdown
    // (mkdocs-jupyter leaves it as written). Only those two kinds of element are processed (options below).
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
    tags: "none"
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown"
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

// ipywidgets' widget manager typesets labels with MathJax 2's MathJax.Hub.Queue; the book
// runs MathJax 3, which has no Hub (a TypeError on every page with a widget). Forward the
// call to MathJax 3's typesetPromise.
if (window.MathJax && !window.MathJax.Hub) {
  window.MathJax.Hub = {
    Queue: (job) => {
      const element = Array.isArray(job) ? job[2] : undefined;
      if (window.MathJax.typesetPromise) {
        window.MathJax.typesetPromise(element ? [element] : undefined).catch(() => {});
      }
    },
  };
}

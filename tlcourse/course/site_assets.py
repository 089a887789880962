"""Files the course website ships in its ``_static/`` folder, kept as text here so that no package data is needed."""

from __future__ import annotations

__all__ = ["COLAB_BADGE", "COLAB_BADGE_FILE", "SITE_CSS", "SITE_CSS_FILE"]

COLAB_BADGE_FILE = "colab-badge.svg"
SITE_CSS_FILE = "tlcourse.css"

# "Open in Colab", drawn here: the page loads no image from elsewhere.
COLAB_BADGE = """\
<svg xmlns="http://www.w3.org/2000/svg" width="117" height="20" viewBox="0 0 117 20" role="img" aria-label="Open in Colab">
  <title>Open in Colab</title>
  <rect width="117" height="20" rx="3" fill="#444"/>
  <rect width="24" height="20" rx="3" fill="#333"/>
  <path d="M9.6 6.2a4.2 4.2 0 1 0 0 7.6" fill="none" stroke="#f9ab00" stroke-width="2.2" stroke-linecap="round"/>
  <path d="M14.4 6.2a4.2 4.2 0 1 1 0 7.6" fill="none" stroke="#e8710a" stroke-width="2.2" stroke-linecap="round"/>
  <text x="70" y="14" fill="#fff" font-family="Verdana,DejaVu Sans,Geneva,sans-serif" font-size="11"
        text-anchor="middle">Open in Colab</text>
</svg>
"""

SITE_CSS = """\
/* tlcourse: the row of links at the top of each lesson, the run's note, tqdm's bars as they ended */
.tlcourse-badges { display: flex; flex-wrap: wrap; gap: 0.75rem; align-items: center; margin: 0.25rem 0 0.5rem; }
.tlcourse-badges img { height: 20px; width: auto; vertical-align: middle; }
.tlcourse-run { font-size: 0.9em; color: var(--pst-color-text-muted); margin-bottom: 1rem; }
.tlcourse-progress { display: flex; gap: 0.5em; align-items: center; margin: 0.1rem 0; white-space: nowrap;
                     overflow-x: auto; font-family: var(--pst-font-family-monospace); font-size: 0.8em; }
.tlcourse-progress progress { width: 10em; }
"""

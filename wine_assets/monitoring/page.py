"""The service's one page: type a wine's values, see its predicted quality and verdict.

Plain HTML and a few lines of JavaScript calling ``POST /predict``; field errors from a 422
are shown next to their inputs. Inputs are generated from ``FEATURES`` and the physical bounds,
pre-filled with the first red wine of the UCI file.
"""

from html import escape

from wine_assets.features import FEATURES, UNITS
from wine_assets.quality.model import GOOD_THRESHOLD
from wine_assets.readings.schema import PHYSICAL_BOUNDS

#: The first row of winequality-red.csv (quality 5).
EXAMPLE = {
    "fixed_acidity": 7.4,
    "volatile_acidity": 0.7,
    "citric_acid": 0.0,
    "residual_sugar": 1.9,
    "chlorides": 0.076,
    "free_sulfur_dioxide": 11.0,
    "total_sulfur_dioxide": 34.0,
    "density": 0.9978,
    "ph": 3.51,
    "sulphates": 0.56,
    "alcohol": 9.4,
}


def _row(name: str) -> str:
    low, high = PHYSICAL_BOUNDS[name]
    label = escape(f"{name.replace('_', ' ')} ({UNITS[name]})")
    return (
        f'<label for="{name}">{label}</label>'
        f'<input id="{name}" name="{name}" type="number" step="any" min="{low}" max="{high}" '
        f'value="{EXAMPLE[name]}" required><span class="err" id="err-{name}"></span>'
    )


PAGE_HTML = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Wine quality</title>
<style>
body {{ font-family: sans-serif; max-width: 42rem; margin: 2rem auto; }}
form {{ display: grid; grid-template-columns: 16rem 8rem auto; gap: .35rem .6rem; }}
.err {{ color: #b00020; font-size: .85rem; }}
#result {{ margin-top: 1.2rem; font-size: 1.3rem; }}
.good {{ color: #1b5e20; }} .notgood {{ color: #8d2a00; }}
</style></head><body>
<h1>Wine quality</h1>
<p>Type a wine's lab values; the champion model predicts its quality (0-10).
A wine is <b>good</b> when the prediction is {GOOD_THRESHOLD} or more; the chance that it
really is (quality {GOOD_THRESHOLD} or more) and the range its quality lies in 9 times out of 10
are shown beside it.</p>
<form id="wine-form" novalidate>
<label for="wine_type">wine type</label>
<select id="wine_type" name="wine_type"><option>red</option><option>white</option></select>
<span class="err" id="err-wine_type"></span>
{"".join(_row(n) for n in FEATURES)}
<span></span><button id="predict" type="submit">Predict</button><span></span>
</form>
<div id="result" role="status"></div>
<script>
const FEATURES = {list(FEATURES)!r};
document.getElementById("wine-form").addEventListener("submit", async (event) => {{
  event.preventDefault();
  const result = document.getElementById("result");
  document.querySelectorAll(".err").forEach((e) => (e.textContent = ""));
  result.textContent = "…";
  result.className = "";
  const wine = {{ wine_type: document.getElementById("wine_type").value }};
  for (const name of FEATURES) {{
    const raw = document.getElementById(name).value;
    wine[name] = raw === "" ? null : Number(raw);
  }}
  const response = await fetch("predict", {{
    method: "POST",
    headers: {{ "Content-Type": "application/json" }},
    body: JSON.stringify(wine),
  }});
  const body = await response.json();
  if (response.ok) {{
    const verdict = body.good ? "good" : "not good";
    result.className = body.good ? "good" : "notgood";
    const quality = body.predicted_quality.toFixed(2);
    result.innerHTML = `Predicted quality <b id="quality">${{quality}}</b>`
      + ` — <b id="verdict">${{verdict}}</b> <small>(model v${{body.model_version}})</small>`;
    if (body.p_good !== null && body.interval_90 !== null) {{
      const chance = Math.round(body.p_good * 100);
      const [low, high] = body.interval_90.map((b) => b.toFixed(1));
      result.innerHTML += `<br><small>chance it is good: <b id="p-good">${{chance}} %</b>;`
        + ` 90 % range: <b id="interval">${{low}}–${{high}}</b></small>`;
    }}
  }} else if (response.status === 422) {{
    result.textContent = "Please correct the highlighted values.";
    for (const error of body.detail) {{
      const slot = document.getElementById("err-" + error.loc[error.loc.length - 1]);
      if (slot) slot.textContent = error.msg;
    }}
  }} else {{
    result.textContent = "Error: " + (body.detail || response.status);
  }}
}});
</script>
</body></html>
"""

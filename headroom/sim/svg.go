package sim

import (
	"bufio"
	"cmp"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
)

// canvas is what the plots draw on, so that the same drawing code writes SVG and
// PNG. Coordinates are pixels from the top left.
type canvas interface {
	line(x1, y1, x2, y2 float64, color string, width float64)
	polyline(xs, ys []float64, color string, width float64)
	rect(x, y, w, h float64, fill string)
	circle(x, y, r float64, fill string)
	text(x, y float64, s string, size float64, color string, anchor string)
}

// Plot geometry.
const (
	plotW      = 960.0
	panelH     = 150.0
	panelGap   = 42.0
	marginL    = 56.0
	marginR    = 150.0
	frontierH  = 320.0
	titleH     = 58.0
	frontGapTo = 60.0
)

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

// plotSize returns the image size for a report.
func plotSize(rep *Report) (w, h float64) {
	return plotW, titleH + float64(len(rep.Results))*(panelH+panelGap) + frontGapTo + frontierH + 50
}

// WriteSVG draws, per policy, demand (the zero-wait desired replicas), ready
// replicas and ready capacity with the placeholders' share, over time; then the
// cost-vs-wait frontier with every policy's point, static and proportional
// sweeps joined as curves.
func WriteSVG(w io.Writer, rep *Report) error {
	bw := bufio.NewWriter(w)
	W, H := plotSize(rep)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif">`+"\n", W, H, W, H)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	draw(&svgCanvas{w: bw}, rep)
	fmt.Fprintln(bw, "</svg>")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing SVG: %w", err)
	}
	return nil
}

type svgCanvas struct{ w *bufio.Writer }

func (c *svgCanvas) line(x1, y1, x2, y2 float64, color string, width float64) {
	fmt.Fprintf(c.w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"/>`+"\n", x1, y1, x2, y2, color, width)
}

func (c *svgCanvas) polyline(xs, ys []float64, color string, width float64) {
	var b strings.Builder
	for i := range xs {
		fmt.Fprintf(&b, "%.1f,%.1f ", xs[i], ys[i])
	}
	fmt.Fprintf(c.w, `<polyline fill="none" stroke="%s" stroke-width="%.1f" points="%s"/>`+"\n", color, width, strings.TrimSpace(b.String()))
}

func (c *svgCanvas) rect(x, y, w, h float64, fill string) {
	fmt.Fprintf(c.w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, w, h, fill)
}

func (c *svgCanvas) circle(x, y, r float64, fill string) {
	fmt.Fprintf(c.w, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s"/>`+"\n", x, y, r, fill)
}

func (c *svgCanvas) text(x, y float64, s string, size float64, color, anchor string) {
	fmt.Fprintf(c.w, `<text x="%.1f" y="%.1f" font-size="%.0f" fill="%s" text-anchor="%s">%s</text>`+"\n", x, y, size, color, anchor, html.EscapeString(s))
}

// draw lays the whole figure out on a canvas.
func draw(c canvas, rep *Report) {
	c.text(marginL, 24, fmt.Sprintf("%s: %s, %d requests, zones %s, seed %d", rep.Trace, rep.Span, rep.Requests, strings.Join(rep.Zones, ","), rep.Seed), 14, "#000", "start")
	top := titleH
	ymax := 1.0
	for _, r := range rep.Results {
		for _, p := range r.Series {
			ymax = max(ymax, p.Demand, p.Ready, p.Capacity, p.Desired)
		}
	}
	ymax = niceCeil(ymax)
	for _, r := range rep.Results {
		drawSeries(c, r, top, ymax, rep.Span.Hours())
		top += panelH + panelGap
	}
	drawFrontier(c, rep, top+frontGapTo-panelGap)
}

func drawSeries(c canvas, r *Result, top, ymax, hours float64) {
	x0, x1 := marginL, plotW-marginR
	y0, y1 := top+panelH, top
	c.text(x0, top-6, r.Policy, 12, "#000", "start")
	axes(c, x0, x1, y0, y1, hours, ymax, "h", "replicas")
	if len(r.Series) == 0 {
		return
	}
	span := math.Max(float64(r.Series[len(r.Series)-1].At.Hours()), 1e-9)
	sx := func(h float64) float64 { return x0 + (x1-x0)*h/math.Max(hours, span) }
	sy := func(v float64) float64 { return y0 - (y0-y1)*math.Min(v/ymax, 1) }
	// Headroom: bars from ready capacity down by the placeholders' share.
	for i, p := range r.Series {
		if p.Headroom <= 0 {
			continue
		}
		xa := sx(p.At.Hours())
		xb := x1
		if i+1 < len(r.Series) {
			xb = sx(r.Series[i+1].At.Hours())
		}
		c.rect(xa, sy(p.Ready+p.Headroom), math.Max(xb-xa, 0.5), sy(p.Ready)-sy(p.Ready+p.Headroom), "#fdd0a2")
	}
	lines := []struct {
		name, color string
		v           func(Point) float64
	}{
		{"capacity", "#2ca02c", func(p Point) float64 { return p.Capacity }},
		{"ready", "#1f77b4", func(p Point) float64 { return p.Ready }},
		{"demand", "#000000", func(p Point) float64 { return p.Demand }},
	}
	for i, l := range lines {
		xs := make([]float64, len(r.Series))
		ys := make([]float64, len(r.Series))
		for j, p := range r.Series {
			xs[j], ys[j] = sx(p.At.Hours()), sy(l.v(p))
		}
		c.polyline(xs, ys, l.color, 1.2)
		c.line(x1+12, y1+12+16*float64(i), x1+30, y1+12+16*float64(i), l.color, 2)
		c.text(x1+34, y1+16+16*float64(i), l.name, 11, "#000", "start")
	}
	c.rect(x1+12, y1+12+16*3-5, 18, 10, "#fdd0a2")
	c.text(x1+34, y1+16+16*3, "headroom", 11, "#000", "start")
	c.text(x1+12, y1+16+16*4+4, fmt.Sprintf("waited %.1f%%", 100*r.WaitedShare), 11, "#000", "start")
	c.text(x1+12, y1+16+16*5+4, fmt.Sprintf("idle %.0f GPU-h", r.IdleGPUHours()), 11, "#000", "start")
}

// axes draws a frame with a few ticks.
func axes(c canvas, x0, x1, y0, y1, xmax, ymax float64, xunit, yunit string) {
	c.line(x0, y0, x1, y0, "#444", 1)
	c.line(x0, y0, x0, y1, "#444", 1)
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		y := y0 - (y0-y1)*float64(i)/4
		c.line(x0-3, y, x1, y, "#eee", 0.5)
		c.text(x0-6, y+4, trim(v), 10, "#444", "end")
	}
	for i := 0; i <= 6; i++ {
		v := xmax * float64(i) / 6
		x := x0 + (x1-x0)*float64(i)/6
		c.line(x, y0, x, y0+3, "#444", 1)
		c.text(x, y0+14, trim(v)+xunit, 10, "#444", "middle")
	}
	c.text(x0+4, y1+10, yunit, 10, "#444", "start")
}

func trim(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func drawFrontier(c canvas, rep *Report, top float64) {
	x0, x1 := marginL, plotW-marginR
	y0, y1 := top+frontierH, top
	c.text(x0, top-8, "cost vs wait: idle GPU-hours (placeholders + idle nodes) against share of replica starts that waited for a node", 12, "#000", "start")
	xmax, ymax := 1.0, 1.0
	for _, r := range rep.Results {
		xmax = max(xmax, r.IdleGPUHours())
		ymax = max(ymax, 100*r.WaitedShare)
	}
	xmax, ymax = niceCeil(xmax), niceCeil(ymax)
	axes(c, x0, x1, y0, y1, xmax, ymax, "", "waited %")
	sx := func(v float64) float64 { return x0 + (x1-x0)*v/xmax }
	sy := func(v float64) float64 { return y0 - (y0-y1)*v/ymax }
	// Policies with the same outcome (reactive and an empty schedule) share a
	// point: each label moves below the ones already near it so all stay legible.
	var placed [][2]float64
	label := func(x, y float64) float64 {
		for moved := true; moved; {
			moved = false
			for _, p := range placed {
				if math.Abs(p[0]-x) < 80 && math.Abs(p[1]-y) < 11 {
					y, moved = p[1]+12, true
				}
			}
		}
		placed = append(placed, [2]float64{x, y})
		return y
	}
	groups := map[string][]*Result{}
	var kinds []string
	for _, r := range rep.Results {
		if _, ok := groups[r.Kind]; !ok {
			kinds = append(kinds, r.Kind)
		}
		groups[r.Kind] = append(groups[r.Kind], r)
	}
	for i, k := range kinds {
		col := palette[i%len(palette)]
		g := slices.Clone(groups[k])
		slices.SortFunc(g, func(a, b *Result) int { return cmp.Compare(a.IdleGPUHours(), b.IdleGPUHours()) })
		if len(g) > 1 {
			xs := make([]float64, len(g))
			ys := make([]float64, len(g))
			for j, r := range g {
				xs[j], ys[j] = sx(r.IdleGPUHours()), sy(100*r.WaitedShare)
			}
			c.polyline(xs, ys, col, 1.5)
		}
		for _, r := range g {
			x, y := sx(r.IdleGPUHours()), sy(100*r.WaitedShare)
			c.circle(x, y, 4, col)
			c.text(x+6, label(x+6, y-6), r.Policy, 10, col, "start")
		}
		c.circle(x1+18, y1+12+16*float64(i), 4, col)
		c.text(x1+28, y1+16+16*float64(i), k, 11, "#000", "start")
	}
	c.text((x0+x1)/2, y0+30, "idle GPU-hours", 11, "#444", "middle")
}

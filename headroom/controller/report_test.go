package controller

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/gpu-headroom/gpu-headroom/headroom"
)

// The /debug/plan report must survive a JSON round trip: maps keyed by zone and
// shape are encoded as "zone/shape" strings.
func TestReportJSONRoundTrip(t *testing.T) {
	in := &Report{
		Desired: headroom.Desired{Release: map[headroom.ZoneShape]bool{{Zone: "zone-a", ShapeHash: "abc"}: true}},
		Demand:  map[string]headroom.Demand{"ns/llm": {Replicas: 2, Reason: "HPA desired 3, ready 1: need 2"}},
	}
	rec := httptest.NewRecorder()
	ServeReport(rec, in)
	var out Report
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("decoding %s: %v", rec.Body.String(), err)
	}
	if !out.Desired.Release[headroom.ZoneShape{Zone: "zone-a", ShapeHash: "abc"}] || out.Demand["ns/llm"].Replicas != 2 {
		t.Fatalf("round trip lost data: %+v", out)
	}
	rec = httptest.NewRecorder()
	ServeReport(rec, nil)
	if rec.Code != 503 {
		t.Fatalf("no report yet: status %d, want 503", rec.Code)
	}
}

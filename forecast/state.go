package forecast

// stateful is implemented by the estimators of this package so that
// [Forecaster] can checkpoint them.
type stateful interface {
	encode(e *encoder)
	decode(d *decoder)
}

var (
	_ stateful = (*LastValue)(nil)
	_ stateful = (*Holt)(nil)
	_ stateful = (*Seasonal)(nil)
	_ stateful = (*Combined)(nil)
	_ stateful = (*Quantile)(nil)
)

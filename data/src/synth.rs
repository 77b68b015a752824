//! A synthetic cohort in the exact schema of the UCI `diabetic_data.csv` (50 columns, the same
//! value sets), for demos and tests where real patient data cannot go: realistic marginals,
//! repeat patients, a hidden ground-truth risk model giving about 11 % `<30` readmissions, and
//! non-IID hospitals (size, age mix, case mix and base rate differ). Deterministic from a seed.

use std::path::{Path, PathBuf};

use rand::distr::weighted::WeightedIndex;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, Geometric, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::error::{DataError, Result};
use crate::schema::{DIABETES130_HEADER, DIABETES130_MEDICATIONS};

/// Picks a value with the given weights.
fn pick<'a, R: Rng>(rng: &mut R, choices: &[(&'a str, f64)]) -> &'a str {
    // Invariant: every table of this module is non-empty with positive weights.
    let index = WeightedIndex::new(choices.iter().map(|c| c.1)).expect("positive weights").sample(rng);
    choices[index].0
}

/// A count with the given mean, heavy-tailed (geometric: failures before a success of
/// probability `1 / (1 + mean)`), capped.
fn count<R: Rng>(rng: &mut R, mean: f64, cap: u32) -> u32 {
    // Invariant: the means below are positive, so p is in (0, 1).
    let draws = Geometric::new(1.0 / (1.0 + mean)).expect("p in (0, 1)").sample(rng);
    draws.min(u64::from(cap)) as u32
}

/// A rounded normal value clamped to `[low, high]`.
fn normal<R: Rng>(rng: &mut R, mean: f64, sd: f64, low: f64, high: f64) -> i64 {
    // Invariant: the deviations below are positive and finite.
    let value: f64 = Normal::new(mean, sd).expect("positive deviation").sample(rng);
    value.round().clamp(low, high) as i64
}

const AGES: [(&str, f64); 10] = [
    ("[0-10)", 0.2),
    ("[10-20)", 0.7),
    ("[20-30)", 1.6),
    ("[30-40)", 3.7),
    ("[40-50)", 9.5),
    ("[50-60)", 17.0),
    ("[60-70)", 22.1),
    ("[70-80)", 25.6),
    ("[80-90)", 16.9),
    ("[90-100)", 2.7),
];

/// Typical codes of each diagnosis group (the group decides the risk, the code is written).
const DIAGNOSES: [(&str, &[&str], f64); 9] = [
    ("circulatory", &["428", "414", "410", "427", "786", "434", "401", "435"], 30.0),
    ("respiratory", &["486", "491", "493", "518", "786"], 14.0),
    ("digestive", &["577", "562", "574", "558", "560"], 9.0),
    ("diabetes", &["250", "250.01", "250.02", "250.6", "250.8", "250.83", "250.13"], 9.0),
    ("injury", &["996", "820", "998", "997", "824"], 7.0),
    ("musculoskeletal", &["715", "722", "721", "733"], 5.0),
    ("genitourinary", &["599", "584", "590", "585"], 5.0),
    ("neoplasms", &["162", "153", "174", "197", "198"], 3.5),
    ("other", &["V57", "780", "V58", "E909", "V45", "278", "682", "038", "276"], 17.5),
];

/// One hospital's file: `patients` patients, each with one or more encounters.
pub fn hospital_csv(index: usize, hospitals: usize, patients: usize, seed: u64) -> Vec<u8> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let position = if hospitals > 1 { index as f64 / (hospitals - 1) as f64 } else { 0.5 };
    // Non-IID: older patients and more circulatory cases towards the last hospitals, base rate shift.
    let age_shift = 1.0 + position;
    let circulatory_weight = 22.0 + 20.0 * position;
    let base_rate = -2.74 + 0.4 * (position - 0.5);
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Invariant: writing to memory cannot fail.
    writer.write_record(DIABETES130_HEADER).expect("writing to memory");
    let mut encounter = 100_000 + index as u64 * 10_000_000;
    for patient in 0..patients {
        let patient_nbr = (index as u64 + 1) * 100_000_000 + patient as u64;
        let race = pick(
            &mut rng,
            &[
                ("Caucasian", 75.0),
                ("AfricanAmerican", 19.0),
                ("Hispanic", 2.0),
                ("Other", 1.5),
                ("Asian", 0.6),
                ("?", 2.2),
            ],
        );
        let gender = pick(&mut rng, &[("Female", 53.8), ("Male", 46.2)]);
        let ages: Vec<(&str, f64)> =
            AGES.iter().enumerate().map(|(i, &(a, w))| (a, w * if i >= 6 { age_shift } else { 1.0 })).collect();
        let age = pick(&mut rng, &ages);
        let age_index = AGES.iter().position(|a| a.0 == age).unwrap_or(7) as f64;
        let encounters = 1 + count(&mut rng, 0.4, 10);
        for _ in 0..encounters {
            encounter += 1 + rng.random_range(0..50u64);
            let admission_type = pick(
                &mut rng,
                &[("1", 53.0), ("3", 18.5), ("2", 18.2), ("6", 5.2), ("5", 4.7), ("8", 0.3), ("7", 0.1)],
            );
            let discharge = pick(
                &mut rng,
                &[
                    ("1", 59.0),
                    ("3", 13.7),
                    ("6", 12.7),
                    ("18", 3.6),
                    ("2", 2.1),
                    ("22", 2.0),
                    ("11", 1.6),
                    ("5", 1.2),
                    ("25", 1.0),
                    ("4", 0.8),
                    ("7", 0.6),
                    ("23", 0.4),
                    ("13", 0.4),
                    ("14", 0.4),
                    ("28", 0.1),
                ],
            );
            let source = pick(
                &mut rng,
                &[
                    ("7", 56.5),
                    ("1", 29.1),
                    ("17", 6.7),
                    ("4", 3.1),
                    ("6", 2.2),
                    ("2", 1.1),
                    ("5", 0.8),
                    ("3", 0.2),
                    ("20", 0.2),
                ],
            );
            let time_in_hospital = 1 + count(&mut rng, 3.4, 13);
            let payer = pick(
                &mut rng,
                &[
                    ("?", 39.6),
                    ("MC", 31.9),
                    ("HM", 6.2),
                    ("SP", 4.9),
                    ("BC", 4.6),
                    ("MD", 3.5),
                    ("CP", 2.5),
                    ("UN", 2.4),
                    ("CM", 1.9),
                    ("OG", 1.0),
                ],
            );
            let specialty = pick(
                &mut rng,
                &[
                    ("?", 49.1),
                    ("InternalMedicine", 14.4),
                    ("Emergency/Trauma", 7.4),
                    ("Family/GeneralPractice", 7.3),
                    ("Cardiology", 5.3),
                    ("Surgery-General", 3.0),
                    ("Nephrology", 1.6),
                    ("Orthopedics", 1.4),
                    ("Radiologist", 1.1),
                    ("Pulmonology", 0.9),
                    ("Psychiatry", 0.9),
                    ("Urology", 0.7),
                    ("ObstetricsandGynecology", 0.7),
                    ("Gastroenterology", 0.6),
                ],
            );
            let lab = normal(&mut rng, 43.0, 19.7, 1.0, 132.0);
            let procedures = count(&mut rng, 1.3, 6);
            let medications = normal(&mut rng, 16.0 + time_in_hospital as f64, 8.0, 1.0, 81.0);
            let outpatient = count(&mut rng, 0.37, 42);
            let emergency = count(&mut rng, 0.2, 76);
            let inpatient = count(&mut rng, 0.64, 21);
            let groups: Vec<(&str, f64)> = DIAGNOSES
                .iter()
                .map(|&(g, _, w)| (g, if g == "circulatory" { circulatory_weight } else { w }))
                .collect();
            let mut diagnosis_groups = Vec::new();
            let mut diagnoses = Vec::new();
            for slot in 0..3 {
                if slot > 0 && rng.random::<f64>() < 0.01 {
                    diagnoses.push("?".to_string());
                    continue;
                }
                let group = pick(&mut rng, &groups);
                let codes = DIAGNOSES.iter().find(|d| d.0 == group).map_or(&["780"][..], |d| d.1);
                diagnoses.push(codes[rng.random_range(0..codes.len())].to_string());
                diagnosis_groups.push(group);
            }
            let number_diagnoses = normal(&mut rng, 7.4, 1.9, 1.0, 16.0);
            let glucose = pick(&mut rng, &[("None", 94.7), ("Norm", 2.6), (">200", 1.5), (">300", 1.2)]);
            let a1c = pick(&mut rng, &[("None", 83.3), (">8", 8.1), ("Norm", 4.9), (">7", 3.7)]);
            let mut medication_values = Vec::new();
            for i in DIABETES130_MEDICATIONS {
                let value = match DIABETES130_HEADER[i] {
                    "insulin" => pick(&mut rng, &[("No", 46.6), ("Steady", 30.3), ("Down", 12.0), ("Up", 11.1)]),
                    "metformin" => pick(&mut rng, &[("No", 80.4), ("Steady", 18.0), ("Up", 1.0), ("Down", 0.6)]),
                    "glipizide" | "glyburide" => {
                        pick(&mut rng, &[("No", 88.0), ("Steady", 10.5), ("Up", 0.8), ("Down", 0.7)])
                    }
                    "pioglitazone" | "rosiglitazone" | "glimepiride" => {
                        pick(&mut rng, &[("No", 93.0), ("Steady", 6.5), ("Up", 0.3), ("Down", 0.2)])
                    }
                    "examide" | "citoglipton" => "No",
                    _ => pick(&mut rng, &[("No", 99.5), ("Steady", 0.5)]),
                };
                medication_values.push(value);
            }
            let changed = medication_values.iter().any(|v| *v == "Up" || *v == "Down") || rng.random::<f64>() < 0.3;
            let on_medication = changed || medication_values.iter().any(|v| *v != "No") || rng.random::<f64>() < 0.2;

            // The hidden ground truth: prior utilisation, length of stay, discharge to care,
            // age, glycaemic control, circulatory disease and insulin changes raise the risk.
            let mut logit = base_rate
                + 0.35 * f64::from(inpatient.min(6))
                + 0.12 * f64::from(emergency.min(5))
                + 0.03 * f64::from(time_in_hospital)
                + 0.01 * (medications as f64 - 16.0)
                + 0.06 * (age_index - 6.0);
            if matches!(discharge, "3" | "22" | "5" | "2") {
                logit += 0.45;
            }
            if a1c == ">8" {
                logit -= 0.15;
            }
            if diagnosis_groups.first() == Some(&"circulatory") {
                logit += 0.15;
            }
            let insulin = DIABETES130_HEADER[DIABETES130_MEDICATIONS].iter().position(|h| *h == "insulin");
            if insulin.is_some_and(|i| medication_values[i] == "Up") {
                logit += 0.2;
            }
            let p = 1.0 / (1.0 + (-logit).exp());
            let readmitted = if rng.random::<f64>() < p {
                "<30"
            } else if rng.random::<f64>() < 0.39 {
                ">30"
            } else {
                "NO"
            };
            let weight = if rng.random::<f64>() < 0.97 {
                "?"
            } else {
                pick(&mut rng, &[("[50-75)", 1.0), ("[75-100)", 2.0), ("[100-125)", 1.0)])
            };

            let mut record: Vec<String> = vec![
                encounter.to_string(),
                patient_nbr.to_string(),
                race.into(),
                gender.into(),
                age.into(),
                weight.into(),
                admission_type.into(),
                discharge.into(),
                source.into(),
                time_in_hospital.to_string(),
                payer.into(),
                specialty.into(),
                lab.to_string(),
                procedures.to_string(),
                medications.to_string(),
                outpatient.to_string(),
                emergency.to_string(),
                inpatient.to_string(),
            ];
            record.extend(diagnoses);
            record.push(number_diagnoses.to_string());
            record.push(glucose.into());
            record.push(a1c.into());
            record.extend(medication_values.iter().map(|v| v.to_string()));
            record.push(if changed { "Ch" } else { "No" }.into());
            record.push(if on_medication { "Yes" } else { "No" }.into());
            record.push(readmitted.into());
            // Invariant: writing to memory cannot fail.
            writer.write_record(&record).expect("writing to memory");
        }
    }
    // Invariant: flushing to memory cannot fail.
    writer.into_inner().expect("writing to memory")
}

/// Writes `hospital-01.csv` … into `dir`; returns the paths.
pub fn write_cohort(dir: &Path, hospitals: usize, patients: usize, seed: u64) -> Result<Vec<PathBuf>> {
    if !(1..=64).contains(&hospitals) {
        return Err(DataError::Argument { name: "hospitals", expected: "1 to 64", got: hospitals });
    }
    if patients == 0 {
        return Err(DataError::Argument { name: "patients", expected: "at least 1", got: patients });
    }
    std::fs::create_dir_all(dir).map_err(|source| DataError::Write { path: dir.to_path_buf(), source })?;
    (0..hospitals)
        .map(|index| {
            // Hospital sizes vary: half to one and a half times the average.
            let size = (patients as f64 * (0.5 + index as f64 / hospitals.max(2) as f64)).round().max(1.0) as usize;
            let path = dir.join(format!("hospital-{:02}.csv", index + 1));
            std::fs::write(&path, hospital_csv(index, hospitals, size, seed))
                .map_err(|source| DataError::Write { path: path.clone(), source })?;
            Ok(path)
        })
        .collect()
}

/// Rewrites the CSV at `path` without its column `column` (a hospital's file that lacks one, for
/// the tests of refusals).
pub fn remove_column(path: &Path, column: &str) -> Result<()> {
    let read_error = |e: csv::Error| DataError::Read { path: path.to_path_buf(), source: std::io::Error::other(e) };
    let write_error = |e: csv::Error| DataError::Write { path: path.to_path_buf(), source: std::io::Error::other(e) };
    let mut reader = csv::Reader::from_path(path).map_err(read_error)?;
    let header = reader.headers().map_err(read_error)?.clone();
    let at = header.iter().position(|h| h == column).ok_or_else(|| DataError::Header {
        path: path.to_path_buf(),
        source: crate::error::HeaderError::MissingColumn { column: column.to_owned() },
    })?;
    let keep = |record: &csv::StringRecord| -> csv::StringRecord {
        record.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, field)| field).collect()
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&keep(&header)).map_err(write_error)?;
    for record in reader.records() {
        writer.write_record(&keep(&record.map_err(read_error)?)).map_err(write_error)?;
    }
    // Invariant: flushing to memory cannot fail.
    let bytes = writer.into_inner().expect("writing to memory");
    std::fs::write(path, bytes).map_err(|source| DataError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (encounters, `<30` readmissions) of one generated hospital.
    fn readmissions(index: usize, hospitals: usize, patients: usize, seed: u64) -> (usize, usize) {
        let bytes = hospital_csv(index, hospitals, patients, seed);
        let mut reader = csv::Reader::from_reader(&bytes[..]);
        let column = reader.headers().unwrap().iter().position(|h| h == "readmitted").unwrap();
        reader.records().map(|r| r.unwrap()).fold((0, 0), |(n, p), r| (n + 1, p + usize::from(&r[column] == "<30")))
    }

    #[test]
    fn the_cohort_has_about_eleven_percent_early_readmissions_and_hospitals_differ() {
        for seed in [0, 1] {
            let per_hospital: Vec<(usize, usize)> = (0..5).map(|i| readmissions(i, 5, 1500, seed)).collect();
            let (rows, positives) = per_hospital.iter().fold((0, 0), |(n, p), &(a, b)| (n + a, p + b));
            let rate = positives as f64 / rows as f64;
            assert!((0.10..=0.12).contains(&rate), "seed {seed}: {rate:.3} of encounters are <30");
            let rates: Vec<f64> = per_hospital.iter().map(|&(n, p)| p as f64 / n as f64).collect();
            assert!(rates[4] - rates[0] > 0.02, "seed {seed}: base rates should differ across hospitals: {rates:?}");
            assert!(rows > 5 * 1500, "seed {seed}: repeat patients give more encounters than patients");
        }
    }
}

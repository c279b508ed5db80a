//! The discount logic: input types (the shape `input.graphql` yields), the merchant's
//! configuration, and the operations sent back to checkout.

use serde::{Deserialize, Serialize};

use crate::decimal::Decimal;

// ---------------------------------------------------------------------------------
// Input: exactly the fields selected by input.graphql.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub cart: Cart,
    pub discount: Discount,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cart {
    pub lines: Vec<CartLine>,
    pub buyer_identity: Option<BuyerIdentity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartLine {
    pub id: String,
    pub quantity: i64,
    pub cost: CartLineCost,
    pub merchandise: Merchandise,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartLineCost {
    pub subtotal_amount: Money,
}

#[derive(Deserialize)]
pub struct Money {
    pub amount: Decimal,
}

/// `merchandise { __typename ... on ProductVariant { product { ... } } }`: `product` is
/// absent for custom products and any merchandise type added later, which are never
/// discounted. (A plain struct rather than an internally tagged enum: serde would
/// buffer every line's merchandise to find the tag, costing instructions per line.)
#[derive(Deserialize)]
pub struct Merchandise {
    pub product: Option<Product>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub is_gift_card: bool,
    /// `inAnyCollection(ids: $excludedCollectionIds)`.
    pub in_any_collection: bool,
}

#[derive(Deserialize)]
pub struct BuyerIdentity {
    pub customer: Option<Customer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// `hasAnyTag(tags: $vipTags)`.
    pub has_any_tag: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discount {
    pub discount_classes: Vec<String>,
    pub metafield: Option<ConfigurationMetafield>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationMetafield {
    pub json_value: Configuration,
}

// ---------------------------------------------------------------------------------
// Configuration: the JSON metafield `cartwheel.function-configuration` on the discount.
// Its `excludedCollectionIds` and `vipTags` keys are also the input query's variables;
// they reach this code already evaluated, as `inAnyCollection` and `hasAnyTag`.

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TierBasis {
    /// Tiers are reached by the number of eligible items.
    Quantity,
    /// Tiers are reached by the eligible lines' subtotal (in the cart's currency).
    Subtotal,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tier {
    /// Quantity or subtotal from which this tier applies.
    pub minimum: Decimal,
    pub percentage: Decimal,
    pub message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    pub basis: TierBasis,
    pub tiers: Vec<Tier>,
    /// Extra percentage for customers carrying one of the VIP tags, added to the tier
    /// reached (VIP customers still need to reach a tier).
    #[serde(default)]
    pub vip_bonus_percentage: Decimal,
}

impl Configuration {
    /// Checks the values serde cannot: ranges. The error names the field to fix.
    pub fn validate(&self) -> Result<(), String> {
        for (i, tier) in self.tiers.iter().enumerate() {
            if tier.minimum.is_negative() {
                return Err(format!("tiers[{}].minimum must not be negative", i));
            }
            if tier.percentage.is_negative() || tier.percentage > Decimal::HUNDRED {
                return Err(format!("tiers[{}].percentage must be within 0-100", i));
            }
        }
        if self.vip_bonus_percentage.is_negative() || self.vip_bonus_percentage > Decimal::HUNDRED
        {
            return Err("vipBonusPercentage must be within 0-100".to_string());
        }
        Ok(())
    }

    /// The tier with the highest minimum that `measure` reaches, if any.
    fn tier_reached(&self, measure: Decimal) -> Option<&Tier> {
        self.tiers
            .iter()
            .filter(|tier| tier.minimum <= measure)
            .max_by_key(|tier| tier.minimum)
    }
}

// ---------------------------------------------------------------------------------
// Output: `cart.lines.discounts.generate.run` operations.

#[derive(Serialize, Default)]
pub struct Output {
    pub operations: Vec<Operation>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    ProductDiscountsAdd(ProductDiscountsAdd),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductDiscountsAdd {
    pub candidates: Vec<ProductDiscountCandidate>,
    pub selection_strategy: &'static str,
}

#[derive(Serialize)]
pub struct ProductDiscountCandidate {
    pub message: String,
    pub targets: Vec<Target>,
    pub value: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    CartLine { id: String },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Value {
    Percentage { value: Decimal },
}

// ---------------------------------------------------------------------------------

/// Computes the discount for one cart. `Err` is a configuration problem the merchant
/// must fix; an unconfigured discount or a cart that reaches no tier gives no operation.
pub fn run(input: Input) -> Result<Output, String> {
    if !input
        .discount
        .discount_classes
        .iter()
        .any(|class| class == "PRODUCT")
    {
        return Ok(Output::default());
    }
    let config = match input.discount.metafield {
        Some(metafield) => metafield.json_value,
        None => return Ok(Output::default()),
    };
    config.validate()?;

    let eligible: Vec<CartLine> = input
        .cart
        .lines
        .into_iter()
        .filter(|line| match &line.merchandise.product {
            Some(product) => !product.is_gift_card && !product.in_any_collection,
            None => false,
        })
        .collect();
    if eligible.is_empty() {
        return Ok(Output::default());
    }

    let measure = match config.basis {
        TierBasis::Quantity => Decimal::from_int(eligible.iter().map(|line| line.quantity).sum()),
        TierBasis::Subtotal => eligible
            .iter()
            .map(|line| line.cost.subtotal_amount.amount)
            .fold(Decimal::ZERO, Decimal::saturating_add),
    };
    let tier = match config.tier_reached(measure) {
        Some(tier) => tier,
        None => return Ok(Output::default()),
    };

    let is_vip = input
        .cart
        .buyer_identity
        .and_then(|buyer| buyer.customer)
        .map_or(false, |customer| customer.has_any_tag);
    let bonus = if is_vip {
        config.vip_bonus_percentage
    } else {
        Decimal::ZERO
    };
    let percentage = tier.percentage.saturating_add(bonus).min(Decimal::HUNDRED);
    if percentage == Decimal::ZERO {
        return Ok(Output::default());
    }

    let base_message = match &tier.message {
        Some(message) => message.clone(),
        None => format!("{}% off", tier.percentage),
    };
    let message = if bonus > Decimal::ZERO {
        format!("{} + VIP {}%", base_message, bonus)
    } else {
        base_message
    };
    let targets = eligible
        .into_iter()
        .map(|line| Target::CartLine { id: line.id })
        .collect();

    Ok(Output {
        operations: vec![Operation::ProductDiscountsAdd(ProductDiscountsAdd {
            candidates: vec![ProductDiscountCandidate {
                message,
                targets,
                value: Value::Percentage { value: percentage },
            }],
            selection_strategy: "FIRST",
        })],
    })
}
